"""`orderpay loadtest`: drive a running stack on loopback and check the database invariants after."""

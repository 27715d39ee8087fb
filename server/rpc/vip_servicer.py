"""VipService: plans and memberships (database reads, on the database runner)."""

from __future__ import annotations

from typing import Any

from orderpay.v1 import vip_service_pb2 as pb
from orderpay.v1 import vip_service_pb2_grpc
from server.rpc.mapping import membership_to_pb, plan_to_pb
from server.service.catalogue import CatalogueService
from server.serving.offload import Runner

Context = Any  # grpc.aio.ServicerContext; unused


class VipServicer(vip_service_pb2_grpc.VipServiceServicer):
    def __init__(self, catalogue: CatalogueService, db: Runner) -> None:
        self._catalogue = catalogue
        self._db = db

    async def ListPlans(self, request: pb.ListPlansRequest, context: Context) -> pb.ListPlansResponse:
        plans = await self._db.run(self._catalogue.list_plans)
        return pb.ListPlansResponse(plans=[plan_to_pb(p) for p in plans])

    async def GetMembership(
        self, request: pb.GetMembershipRequest, context: Context
    ) -> pb.GetMembershipResponse:
        membership = await self._db.run(self._catalogue.get_membership, request.user_id)
        return pb.GetMembershipResponse(membership=membership_to_pb(membership))

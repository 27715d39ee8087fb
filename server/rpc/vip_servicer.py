"""VipService: plans and memberships."""

from __future__ import annotations

import grpc

from orderpay.v1 import vip_service_pb2 as pb
from orderpay.v1 import vip_service_pb2_grpc
from server.rpc.mapping import membership_to_pb, plan_to_pb
from server.service.catalogue import CatalogueService


class VipServicer(vip_service_pb2_grpc.VipServiceServicer):
    def __init__(self, catalogue: CatalogueService) -> None:
        self._catalogue = catalogue

    def ListPlans(self, request: pb.ListPlansRequest, context: grpc.ServicerContext) -> pb.ListPlansResponse:
        return pb.ListPlansResponse(plans=[plan_to_pb(p) for p in self._catalogue.list_plans()])

    def GetMembership(
        self, request: pb.GetMembershipRequest, context: grpc.ServicerContext
    ) -> pb.GetMembershipResponse:
        return pb.GetMembershipResponse(
            membership=membership_to_pb(self._catalogue.get_membership(request.user_id))
        )

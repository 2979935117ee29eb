package grpcapi

import (
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/visionserve/visionserve/internal/auth"
	pb "github.com/visionserve/visionserve/proto/inference"
)

// MethodScopes is the gRPC method -> scope table, the counterpart of the
// HTTP one (httpapi/scopes.go): health and liveness are open, as their
// REST twins are; everything else needs infer. A method missing here is
// refused by the auth interceptor, so a new RPC needs a decision.
func MethodScopes() auth.MethodScopes {
	return auth.MethodScopes{
		healthpb.Health_Check_FullMethodName:                                   auth.Public,
		healthpb.Health_Watch_FullMethodName:                                   auth.Public,
		healthpb.Health_List_FullMethodName:                                    auth.Public,
		reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      auth.Public,
		reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: auth.Public,

		pb.GRPCInferenceService_ServerLive_FullMethodName:     auth.Public,
		pb.GRPCInferenceService_ServerReady_FullMethodName:    auth.Public,
		pb.GRPCInferenceService_ServerMetadata_FullMethodName: auth.ScopeInfer,
		pb.GRPCInferenceService_ModelReady_FullMethodName:     auth.ScopeInfer,
		pb.GRPCInferenceService_ModelMetadata_FullMethodName:  auth.ScopeInfer,
		pb.GRPCInferenceService_ModelInfer_FullMethodName:     auth.ScopeInfer,
	}
}

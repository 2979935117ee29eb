package grpcapi

import (
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/visionserve/visionserve/internal/auth"
	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// MethodScopes is the gRPC method -> scope table, the counterpart of the
// HTTP one (httpapi/scopes.go), method for route: health and liveness are
// open, as their REST twins are; the methods that change a gallery need
// galleries:write, as PUT, POST and DELETE /v1/galleries/... do;
// everything else, Identify, GetSubject and the listings included (they
// read a gallery), needs infer. A method missing here is refused by the auth interceptor,
// so a new RPC needs a decision.
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

		v1.OCR_Recognize_FullMethodName: auth.ScopeInfer,

		v1.Faces_Detect_FullMethodName:        auth.ScopeInfer,          // POST /v1/faces/detect
		v1.Faces_Verify_FullMethodName:        auth.ScopeInfer,          // POST /v1/faces/verify
		v1.Faces_Identify_FullMethodName:      auth.ScopeInfer,          // POST /v1/galleries/{g}/identify
		v1.Faces_GetSubject_FullMethodName:    auth.ScopeInfer,          // GET /v1/galleries/{g}/subjects/{s}
		v1.Faces_ListGalleries_FullMethodName: auth.ScopeInfer,          // GET /v1/galleries
		v1.Faces_ListSubjects_FullMethodName:  auth.ScopeInfer,          // GET /v1/galleries/{g}/subjects
		v1.Faces_CreateGallery_FullMethodName: auth.ScopeGalleriesWrite, // PUT /v1/galleries/{g}
		v1.Faces_DeleteGallery_FullMethodName: auth.ScopeGalleriesWrite, // DELETE /v1/galleries/{g}
		v1.Faces_Enroll_FullMethodName:        auth.ScopeGalleriesWrite, // POST /v1/galleries/{g}/subjects/{s}/faces
		v1.Faces_DeleteSubject_FullMethodName: auth.ScopeGalleriesWrite, // DELETE /v1/galleries/{g}/subjects/{s}
	}
}

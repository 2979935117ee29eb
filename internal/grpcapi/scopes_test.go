package grpcapi

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/visionserve/visionserve/internal/auth"
	"github.com/visionserve/visionserve/internal/httpapi"
	"github.com/visionserve/visionserve/internal/sched"
	pb "github.com/visionserve/visionserve/proto/inference"
	v1 "github.com/visionserve/visionserve/proto/visionserve/v1"
)

// Every method the server serves has a scope, and every scope names a
// served method: the auth interceptor refuses a method missing from the
// table, so a forgotten entry would be an outage, a stale one a lie.
func TestEveryServedMethodHasAScope(t *testing.T) {
	scopes := MethodScopes()
	served := map[string]bool{}
	services := New(Config{}).grpc.GetServiceInfo()
	for svc, info := range services {
		for _, m := range info.Methods {
			full := "/" + svc + "/" + m.Name
			served[full] = true
			if _, ok := scopes[full]; !ok {
				t.Errorf("%s has no scope in MethodScopes", full)
			}
		}
	}
	for m := range scopes {
		if !served[m] {
			t.Errorf("MethodScopes names %s, which is not served", m)
		}
	}
	for _, svc := range []string{pb.GRPCInferenceService_ServiceDesc.ServiceName, v1.OCR_ServiceDesc.ServiceName, v1.Faces_ServiceDesc.ServiceName} {
		if _, ok := services[svc]; !ok {
			t.Errorf("%s is not served", svc)
		}
	}
}

// Each method needs the scope its HTTP route needs and, like the route,
// passes admission control only when it does inference. The HTTP side is
// read from the server's own route table.
func TestMethodsMatchTheirHTTPRoutes(t *testing.T) {
	routes := map[string]httpapi.Route{}
	for _, rt := range httpapi.New(httpapi.Config{Scheduler: sched.New(1, 1, nil), Gatherer: prometheus.NewRegistry()}).Routes() {
		routes[rt.Pattern()] = rt
	}
	twin := map[string]string{
		pb.GRPCInferenceService_ServerLive_FullMethodName:     "GET /v2/health/live",
		pb.GRPCInferenceService_ServerReady_FullMethodName:    "GET /v2/health/ready",
		pb.GRPCInferenceService_ServerMetadata_FullMethodName: "GET /v2",
		pb.GRPCInferenceService_ModelReady_FullMethodName:     "GET /v2/models/{model}/ready",
		pb.GRPCInferenceService_ModelMetadata_FullMethodName:  "GET /v2/models/{model}",
		pb.GRPCInferenceService_ModelInfer_FullMethodName:     "POST /v2/models/{model}/infer",
		v1.OCR_Recognize_FullMethodName:                       "POST /v1/ocr",
		v1.Faces_Detect_FullMethodName:                        "POST /v1/faces/detect",
		v1.Faces_Verify_FullMethodName:                        "POST /v1/faces/verify",
		v1.Faces_CreateGallery_FullMethodName:                 "PUT /v1/galleries/{gallery}",
		v1.Faces_ListGalleries_FullMethodName:                 "GET /v1/galleries",
		v1.Faces_DeleteGallery_FullMethodName:                 "DELETE /v1/galleries/{gallery}",
		v1.Faces_ListSubjects_FullMethodName:                  "GET /v1/galleries/{gallery}/subjects",
		v1.Faces_Enroll_FullMethodName:                        "POST /v1/galleries/{gallery}/subjects/{subject}/faces",
		v1.Faces_GetSubject_FullMethodName:                    "GET /v1/galleries/{gallery}/subjects/{subject}",
		v1.Faces_DeleteSubject_FullMethodName:                 "DELETE /v1/galleries/{gallery}/subjects/{subject}",
		v1.Faces_Identify_FullMethodName:                      "POST /v1/galleries/{gallery}/identify",
	}
	for method, scope := range MethodScopes() {
		if strings.HasPrefix(method, "/grpc.") {
			if scope != auth.Public {
				t.Errorf("%s needs %s; the standard services are open", method, scope)
			}
			continue
		}
		pattern, ok := twin[method]
		if !ok {
			t.Errorf("%s: name its HTTP twin in this test", method)
			continue
		}
		rt, ok := routes[pattern]
		if !ok {
			t.Errorf("%s: no HTTP route %s", method, pattern)
			continue
		}
		if scope != rt.Scope {
			t.Errorf("%s needs %q, %s needs %q", method, scope, pattern, rt.Scope)
		}
		if admitted[method] != rt.Admit {
			t.Errorf("%s admitted=%v, %s Admit=%v", method, admitted[method], pattern, rt.Admit)
		}
	}
}

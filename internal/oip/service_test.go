package oip_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/oip"
)

// addModel is a fake: z = x + y on INT32 [-1, 2], and w = the row count.
type addModel struct{ calls int }

func (m *addModel) Signature() oip.Signature {
	return oip.Signature{Platform: "fake",
		Inputs:  []engine.TensorInfo{{Name: "x", DType: engine.INT32, Shape: []int64{-1, 2}}, {Name: "y", DType: engine.INT32, Shape: []int64{-1, 2}}},
		Outputs: []engine.TensorInfo{{Name: "z", DType: engine.INT32, Shape: []int64{-1, 2}}, {Name: "w", DType: engine.INT64, Shape: []int64{1}}}}
}

func (m *addModel) Infer(_ context.Context, in []engine.Tensor, _ oip.Parameters) ([]engine.Tensor, error) {
	m.calls++
	x, y := in[0].Data.([]int32), in[1].Data.([]int32)
	z := make([]int32, len(x))
	for i := range z {
		z[i] = x[i] + y[i]
	}
	return []engine.Tensor{engine.NewTensor(in[0].Shape, z), engine.NewTensor([]int64{1}, []int64{in[0].Shape[0]})}, nil
}

func newService(t *testing.T, lim oip.Limits) (*oip.Service, *addModel) {
	t.Helper()
	m := &addModel{}
	src, err := oip.NewStaticModels(oip.Handle{Name: "add", Version: "3", Model: m})
	if err != nil {
		t.Fatal(err)
	}
	return oip.NewService(oip.Config{Version: "test", Limits: lim}, src, nil), m
}

func in(name string, shape []int64, data []int32) oip.Input {
	return oip.Input{Name: name, Tensor: engine.NewTensor(shape, data)}
}

func TestServiceInfer(t *testing.T) {
	svc, m := newService(t, oip.DefaultLimits())
	x := in("x", []int64{2, 2}, []int32{1, 2, 3, 4})
	y := in("y", []int64{2, 2}, []int32{10, 20, 30, 40})
	// Inputs in any order; outputs all, in the model's order.
	resp, err := svc.Infer(context.Background(), &oip.InferRequest{ModelName: "add", ID: "r", Inputs: []oip.Input{y, x}})
	if err != nil {
		t.Fatal(err)
	}
	if resp.ModelName != "add" || resp.ModelVersion != "3" || resp.ID != "r" || len(resp.Outputs) != 2 ||
		resp.Outputs[0].Name != "z" || !reflect.DeepEqual(resp.Outputs[0].Data, []int32{11, 22, 33, 44}) || resp.Outputs[1].Name != "w" {
		t.Errorf("response %+v", resp)
	}
	// One requested output.
	resp, err = svc.Infer(context.Background(), &oip.InferRequest{ModelName: "add", ModelVersion: "3", Inputs: []oip.Input{x, y},
		Outputs: []oip.RequestedOutput{{Name: "w"}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Outputs) != 1 || resp.Outputs[0].Name != "w" || !reflect.DeepEqual(resp.Outputs[0].Data, []int64{2}) {
		t.Errorf("requested w only, got %+v", resp.Outputs)
	}
	calls := m.calls

	for _, tc := range []struct {
		name      string
		req       oip.InferRequest
		want      error
		wantInErr string
	}{
		{"unknown model", oip.InferRequest{ModelName: "nope", Inputs: []oip.Input{x, y}}, oip.ErrModelNotFound, `no model named "nope" (served: add)`},
		{"unknown version", oip.InferRequest{ModelName: "add", ModelVersion: "4", Inputs: []oip.Input{x, y}}, oip.ErrVersionNotFound, "has version 3, not 4"},
		{"missing input", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x}}, oip.ErrInvalidRequest, `input "y" is missing`},
		{"unknown input", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, y, in("q", []int64{1}, []int32{1})}}, oip.ErrInvalidRequest, `no input "q"`},
		{"input twice", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, x}}, oip.ErrInvalidRequest, `"x" is given twice`},
		{"wrong dtype", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, {Name: "y", Tensor: engine.NewTensor([]int64{2, 2}, []float32{1, 2, 3, 4})}}},
			oip.ErrInvalidRequest, `input "y": the model takes INT32, got FP32`},
		{"wrong rank", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, in("y", []int64{4}, []int32{1, 2, 3, 4})}},
			oip.ErrInvalidRequest, "takes shape [-1,2], got [4]"},
		{"wrong fixed dimension", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, in("y", []int64{1, 4}, []int32{1, 2, 3, 4})}},
			oip.ErrInvalidRequest, "takes shape [-1,2], got [1,4]"},
		{"data shorter than shape", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, in("y", []int64{3, 2}, []int32{1, 2, 3, 4})}},
			oip.ErrInvalidRequest, "needs 6 elements, has 4"},
		{"empty input", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{in("x", []int64{0, 2}, []int32{}), in("y", []int64{0, 2}, []int32{})}},
			oip.ErrInvalidRequest, `input "x" of shape [0 2] is empty: dimension 0 is 0`},
		{"unknown output", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, y}, Outputs: []oip.RequestedOutput{{Name: "q"}}},
			oip.ErrInvalidRequest, `no output "q" (outputs: z INT32[-1,2], w INT64[1])`},
		{"output twice", oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, y}, Outputs: []oip.RequestedOutput{{Name: "z"}, {Name: "z"}}},
			oip.ErrInvalidRequest, "requested twice"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.Infer(context.Background(), &tc.req)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Infer = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantInErr)
			}
		})
	}
	if m.calls != calls {
		t.Errorf("the model ran %d times on requests that failed their checks", m.calls-calls)
	}
}

func TestServiceLimits(t *testing.T) {
	svc, _ := newService(t, oip.Limits{MaxTensors: 3, MaxElements: 6})
	x := in("x", []int64{2, 2}, []int32{1, 2, 3, 4})
	y := in("y", []int64{2, 2}, []int32{1, 2, 3, 4})
	if _, err := svc.Infer(context.Background(), &oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, y}}); !errors.Is(err, oip.ErrTooLarge) {
		t.Errorf("8 elements with a limit of 6: %v", err)
	}
	if _, err := svc.Infer(context.Background(), &oip.InferRequest{ModelName: "add", Inputs: []oip.Input{x, y},
		Outputs: []oip.RequestedOutput{{Name: "z"}, {Name: "w"}}}); !errors.Is(err, oip.ErrTooLarge) {
		t.Errorf("4 tensors with a limit of 3: %v", err)
	}
}

func TestServiceMetadata(t *testing.T) {
	svc, _ := newService(t, oip.DefaultLimits())
	md := svc.ServerMetadata()
	if md.Name != "visionserve" || md.Version != "test" || !reflect.DeepEqual(md.Extensions, []string{"binary_tensor_data"}) {
		t.Errorf("server metadata %+v", md)
	}
	mm, err := svc.ModelMetadata("add", "")
	if err != nil {
		t.Fatal(err)
	}
	if mm.Name != "add" || !reflect.DeepEqual(mm.Versions, []string{"3"}) || mm.Platform != "fake" || len(mm.Inputs) != 2 || len(mm.Outputs) != 2 {
		t.Errorf("model metadata %+v", mm)
	}
	mm.Inputs[0].Shape[0] = 99 // callers get copies
	if again, _ := svc.ModelMetadata("add", "3"); again.Inputs[0].Shape[0] != -1 {
		t.Error("ModelMetadata shares the model's shapes with its caller")
	}
	if _, err := svc.ModelMetadata("add", "1"); !errors.Is(err, oip.ErrVersionNotFound) {
		t.Errorf("metadata of a version not served: %v", err)
	}
	if ok, err := svc.ModelReady("add", ""); !ok || err != nil {
		t.Errorf("ModelReady = %v, %v", ok, err)
	}
	if _, err := svc.ModelReady("nope", ""); !errors.Is(err, oip.ErrModelNotFound) {
		t.Errorf("ModelReady(nope) = %v", err)
	}
	notReady := oip.NewService(oip.Config{Ready: func() error { return errors.New("draining") }}, mustSource(t), nil)
	if ok, err := notReady.ModelReady("add", ""); ok || err != nil {
		t.Errorf("ModelReady while the server is not ready = %v, %v", ok, err)
	}
}

func mustSource(t *testing.T) *oip.StaticModels {
	s, err := oip.NewStaticModels(oip.Handle{Name: "add", Version: "1", Model: &addModel{}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStaticModels(t *testing.T) {
	if _, err := oip.NewStaticModels(oip.Handle{Name: "a", Model: &addModel{}}, oip.Handle{Name: "a", Model: &addModel{}}); err == nil {
		t.Error("a name twice was accepted")
	}
	if _, err := oip.NewStaticModels(oip.Handle{Name: "a"}); err == nil {
		t.Error("a handle without a model was accepted")
	}
	empty, err := oip.NewStaticModels()
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := empty.Acquire("x", ""); !errors.Is(err, oip.ErrModelNotFound) || !strings.Contains(err.Error(), "served: none") {
		t.Errorf("Acquire on an empty source: %v", err)
	}
}

package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/visionserve/visionserve/internal/app/apptest"
	"github.com/visionserve/visionserve/internal/config"
	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/testenv"
	pb "github.com/visionserve/visionserve/proto/inference"
)

// mixModel is the small model the inference-protocol tests serve. It
// computes z = sigmoid(x*y + x) on FP32 and passes one tensor of each other
// datatype through, so every wire encoding is exercised against values
// ONNX Runtime itself produced. The batchable variant leaves out FP16,
// whose tensors must have a static shape (see passThrough).
func mixModel(t *testing.T, batchable bool) []byte {
	t.Helper()
	nodes := []onnxtest.Node{
		{Op: "Mul", Inputs: []string{"x", "y"}, Outputs: []string{"xy"}},
		{Op: "Add", Inputs: []string{"xy", "x"}, Outputs: []string{"s"}},
		{Op: "Sigmoid", Inputs: []string{"s"}, Outputs: []string{"z"}},
	}
	inputs := []onnxtest.Value{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 3}}, {Name: "y", DType: engine.FP32, Shape: []int64{-1, 3}}}
	outputs := []onnxtest.Value{{Name: "z", DType: engine.FP32, Shape: []int64{-1, 3}}}
	for _, p := range passThrough {
		if batchable && p.dims[0] >= 0 {
			continue
		}
		nodes = append(nodes, onnxtest.Node{Op: "Identity", Inputs: []string{"in_" + p.name}, Outputs: []string{"out_" + p.name}})
		inputs = append(inputs, onnxtest.Value{Name: "in_" + p.name, DType: p.t.DType, Shape: p.dims})
		outputs = append(outputs, onnxtest.Value{Name: "out_" + p.name, DType: p.t.DType, Shape: p.dims})
	}
	m, err := onnxtest.Model(nodes, inputs, outputs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var passThrough = []struct {
	name string
	dims []int64
	t    engine.Tensor
}{
	{"i64", []int64{-1, 2}, engine.NewTensor([]int64{2, 2}, []int64{-1 << 63, -1, 0, 1<<63 - 1})},
	{"i32", []int64{-1}, engine.NewTensor([]int64{2}, []int32{-1 << 31, 1<<31 - 1})},
	{"u8", []int64{-1}, engine.NewTensor([]int64{2}, []uint8{7, 255})},
	{"b", []int64{-1}, engine.NewTensor([]int64{2}, []bool{true, false})},
	{"f64", []int64{-1}, engine.NewTensor([]int64{2}, []float64{0.1, -1e300})},
	// onnxruntime_go returns FP16 outputs only for static shapes.
	{"f16", []int64{2, 2}, engine.Tensor{DType: engine.FP16, Shape: []int64{2, 2}, Data: []uint16{0x3c00, 0xc000, 0x7bff, 0x0001}}},
	{"s", []int64{-1}, engine.Tensor{DType: engine.BYTES, Shape: []int64{2}, Data: [][]byte{[]byte("héllo"), {0xff, 0x01}}}},
}

// mixInputs returns the model's inputs in its order, every one with 2 rows
// so that the batched model batches them.
func mixInputs(batchable bool) []oip.Input {
	x := engine.NewTensor([]int64{2, 3}, []float32{0.5, -1.25, 3, 1e-3, 42, -7})
	y := engine.NewTensor([]int64{2, 3}, []float32{2, 0.1, -0.3, 1e3, 0, 1.5})
	in := []oip.Input{{Name: "x", Tensor: x}, {Name: "y", Tensor: y}}
	for _, p := range passThrough {
		if batchable && p.dims[0] >= 0 {
			continue
		}
		in = append(in, oip.Input{Name: "in_" + p.name, Tensor: p.t})
	}
	return in
}

// served is a model under test and what a session running it directly
// returns for mixInputs.
type served struct {
	name      string
	batchable bool
	want      []engine.Tensor
	outputs   []engine.TensorInfo
}

// serveMix starts a server with the default OCR model and the mix model,
// unbatched ("mix") and, without its FP16 tensors, batched ("mix-batched").
func serveMix(t *testing.T) (*apptest.Server, []served) {
	t.Helper()
	onnxtest.Init(t)
	dir := t.TempDir()
	models := []served{{name: "mix"}, {name: "mix-batched", batchable: true}}
	for i, m := range models {
		model := mixModel(t, m.batchable)
		if err := os.WriteFile(filepath.Join(dir, m.name+".onnx"), model, 0o644); err != nil {
			t.Fatal(err)
		}
		sess, err := onnx.NewSession(model, onnx.DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		var direct []engine.Tensor
		for _, in := range mixInputs(m.batchable) {
			direct = append(direct, in.Tensor)
		}
		if models[i].want, err = sess.Run(context.Background(), direct); err != nil {
			t.Fatal(err)
		}
		models[i].outputs = sess.Outputs()
		sess.Close()
	}
	srv := apptest.Start(t, func(c *config.Config) {
		c.Server.Workers = 2
		c.Models = append(c.Models,
			config.Model{Name: "mix", Version: "3", Engine: "onnx", Dir: dir, Runtime: map[string]any{"file": "mix.onnx"}},
			config.Model{Name: "mix-batched", Version: "1", Engine: "onnx", Dir: dir, Runtime: map[string]any{
				"file": "mix-batched.onnx", "batching": map[string]any{"max_batch_size": 8, "max_queue_delay": "20ms"}}},
		)
	})
	return srv, models
}

func requireSame(t *testing.T, where string, names []engine.TensorInfo, want []engine.Tensor, got []oip.Output) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: %d outputs, want %d", where, len(got), len(want))
		return
	}
	for i, o := range got {
		w := want[i]
		if o.Name != names[i].Name || o.DType != w.DType || !reflect.DeepEqual(o.Shape, w.Shape) || !reflect.DeepEqual(o.Data, w.Data) {
			t.Errorf("%s: output %d %q = %s %v %v\nthe session returned %q = %s %v %v", where, i, o.Name, o.DType, o.Shape, o.Data,
				names[i].Name, w.DType, w.Shape, w.Data)
		}
	}
}

// restRequest encodes inputs as a REST body, as JSON or with every input
// binary (asking for binary outputs too).
func restRequest(t *testing.T, inputs []oip.Input, binary bool) ([]byte, int) {
	t.Helper()
	var js bytes.Buffer
	var bin []byte
	js.WriteString(`{"id":"req-1","inputs":[`)
	for i, in := range inputs {
		if i > 0 {
			js.WriteByte(',')
		}
		// The response encoder writes one tensor in the same form an
		// input takes; borrow it.
		out, hl, err := oip.EncodeResponse(&oip.InferResponse{Outputs: []oip.Output{{Name: in.Name, Tensor: in.Tensor}}}, []bool{binary})
		if err != nil {
			t.Fatal(err)
		}
		if hl < 0 {
			hl = len(out)
		}
		s := string(out[:hl])
		js.WriteString(strings.TrimSuffix(s[strings.Index(s, `"outputs":[`)+len(`"outputs":[`):], "]}"))
		bin = append(bin, out[hl:]...)
	}
	js.WriteString("]")
	if binary {
		js.WriteString(`,"parameters":{"binary_data_output":true}`)
	}
	js.WriteString("}")
	if !binary {
		return js.Bytes(), -1
	}
	hl := js.Len()
	return append(js.Bytes(), bin...), hl
}

func postInfer(t *testing.T, url string, body []byte, headerLen int) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if headerLen >= 0 {
		req.Header.Set("Content-Type", "application/octet-stream")
		req.Header.Set(oip.HeaderInferenceHeaderLength, strconv.Itoa(headerLen))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func grpcClient(t *testing.T, addr string) (*grpc.ClientConn, pb.GRPCInferenceServiceClient) {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, pb.NewGRPCInferenceServiceClient(conn)
}

// The must-show test: the generated model served over REST (JSON and
// binary) and gRPC (typed contents and raw) answers exactly what the
// session run directly answers, batched or not.
func TestIntegrationOIPMatchesSession(t *testing.T) {
	srv, models := serveMix(t)
	_, client := grpcClient(t, srv.GRPCAddr)
	for _, m := range models {
		model, want, outs := m.name, m.want, m.outputs
		mixInputs := func() []oip.Input { return mixInputs(m.batchable) }
		for _, binary := range []bool{false, true} {
			t.Run(fmt.Sprintf("REST %s binary=%v", model, binary), func(t *testing.T) {
				body, hl := restRequest(t, mixInputs(), binary)
				resp, data := postInfer(t, srv.URL+"/v2/models/"+model+"/infer", body, hl)
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, data)
				}
				rhl := -1
				if h := resp.Header.Get(oip.HeaderInferenceHeaderLength); h != "" {
					rhl, _ = strconv.Atoi(h)
				}
				if binary != (rhl >= 0) {
					t.Errorf("binary=%v but the response header length is %d", binary, rhl)
				}
				got, err := oip.DecodeResponse(data, rhl, oip.DefaultLimits())
				if err != nil {
					t.Fatalf("%v\n%s", err, data)
				}
				if got.ModelName != model || got.ID != "req-1" {
					t.Errorf("model %q id %q", got.ModelName, got.ID)
				}
				requireSame(t, "REST", outs, want, got.Outputs)
			})
		}
		for _, raw := range []bool{false, true} {
			t.Run(fmt.Sprintf("gRPC %s raw=%v", model, raw), func(t *testing.T) {
				req := &pb.ModelInferRequest{ModelName: model, Id: "req-2"}
				for _, in := range mixInputs() {
					pin := &pb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: string(in.DType), Shape: in.Shape}
					if raw || in.DType == engine.FP16 {
						raw = true
					} else {
						pin.Contents = contents(t, in.Tensor)
					}
					req.Inputs = append(req.Inputs, pin)
				}
				if raw {
					for i, in := range mixInputs() {
						req.Inputs[i].Contents = nil
						b, err := oip.AppendRaw(nil, in.Tensor)
						if err != nil {
							t.Fatal(err)
						}
						req.RawInputContents = append(req.RawInputContents, b)
					}
				}
				resp, err := client.ModelInfer(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				if resp.GetModelName() != model || resp.GetId() != "req-2" || len(resp.GetRawOutputContents()) != len(resp.GetOutputs()) {
					t.Fatalf("response %v", resp)
				}
				var got []oip.Output
				for i, o := range resp.GetOutputs() {
					n := engine.Tensor{Shape: o.GetShape()}.Elements()
					tt, err := oip.DecodeRaw(o.GetName(), engine.DType(o.GetDatatype()), o.GetShape(), n, resp.GetRawOutputContents()[i])
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, oip.Output{Name: o.GetName(), Tensor: tt})
				}
				requireSame(t, "gRPC", outs, want, got)
			})
		}
	}
}

// contents puts a tensor in the typed contents field for its datatype.
func contents(t *testing.T, tt engine.Tensor) *pb.InferTensorContents {
	t.Helper()
	c := &pb.InferTensorContents{}
	switch d := tt.Data.(type) {
	case []float32:
		c.Fp32Contents = d
	case []float64:
		c.Fp64Contents = d
	case []int64:
		c.Int64Contents = d
	case []int32:
		c.IntContents = d
	case []uint8:
		for _, v := range d {
			c.UintContents = append(c.UintContents, uint32(v))
		}
	case []bool:
		c.BoolContents = d
	case [][]byte:
		c.BytesContents = d
	default:
		t.Fatalf("no typed contents for %T", tt.Data)
	}
	return c
}

// rowsInputs are the batchable model's inputs with rows rows, the values
// depending on g.
func rowsInputs(g int, rows int64) []oip.Input {
	n := int(rows)
	x, i64, i32, u8, b, f64, s := make([]float32, 3*n), make([]int64, 2*n), make([]int32, n), make([]uint8, n), make([]bool, n), make([]float64, n), make([][]byte, n)
	for i := range x {
		x[i] = float32(g*100+i) / 7
	}
	for i := range i64 {
		i64[i] = int64(g)<<40 + int64(i)
	}
	for i := range n {
		i32[i], u8[i], b[i], f64[i], s[i] = int32(-g*i), uint8(g+i), (g+i)%2 == 0, float64(g)/3+float64(i), []byte(fmt.Sprintf("client %d row %d", g, i))
	}
	return []oip.Input{
		{Name: "x", Tensor: engine.NewTensor([]int64{rows, 3}, x)},
		{Name: "y", Tensor: engine.NewTensor([]int64{rows, 3}, x)},
		{Name: "in_i64", Tensor: engine.NewTensor([]int64{rows, 2}, i64)},
		{Name: "in_i32", Tensor: engine.NewTensor([]int64{rows}, i32)},
		{Name: "in_u8", Tensor: engine.NewTensor([]int64{rows}, u8)},
		{Name: "in_b", Tensor: engine.NewTensor([]int64{rows}, b)},
		{Name: "in_f64", Tensor: engine.NewTensor([]int64{rows}, f64)},
		{Name: "in_s", Tensor: engine.Tensor{DType: engine.BYTES, Shape: []int64{rows}, Data: s}},
	}
}

// Concurrent batched requests each get exactly their own answer, and some
// of them do run in one batch.
func TestIntegrationOIPBatchedConcurrent(t *testing.T) {
	srv, _ := serveMix(t)
	sess, err := onnx.NewSession(mixModel(t, true), onnx.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var mu sync.Mutex // the session is not for concurrent use
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			rows := int64(1 + g%3)
			in := rowsInputs(g, rows)
			var direct []engine.Tensor
			for _, t := range in {
				direct = append(direct, t.Tensor)
			}
			mu.Lock()
			want, err := sess.Run(context.Background(), direct)
			mu.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
			body, _ := restRequest(t, in, false)
			resp, data := postInfer(t, srv.URL+"/v2/models/mix-batched/infer", body, -1)
			if resp.StatusCode != 200 {
				t.Errorf("status %d: %s", resp.StatusCode, data)
				return
			}
			got, err := oip.DecodeResponse(data, -1, oip.DefaultLimits())
			if err != nil {
				t.Error(err)
				return
			}
			requireSame(t, fmt.Sprintf("client %d", g), sess.Outputs(), want, got.Outputs)
		})
	}
	wg.Wait()
	families, err := srv.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "visionserve_batch_requests" {
			continue
		}
		for _, m := range f.GetMetric() {
			h := m.GetHistogram()
			if h.GetSampleSum() <= float64(h.GetSampleCount()) {
				t.Errorf("every one of %d runs held a single request", h.GetSampleCount())
			}
			return
		}
	}
	t.Error("no visionserve_batch_requests samples")
}

// Wrong shapes, wrong datatypes and unknown models are client errors on
// both transports, with messages that say what is wrong.
func TestIntegrationOIPErrors(t *testing.T) {
	srv, _ := serveMix(t)
	_, client := grpcClient(t, srv.GRPCAddr)
	good := mixInputs(false)
	with := func(name string, tt engine.Tensor) []oip.Input {
		in := mixInputs(false)
		for i := range in {
			if in[i].Name == name {
				in[i].Tensor = tt
			}
		}
		return in
	}
	for _, tc := range []struct {
		name     string
		model    string
		inputs   []oip.Input
		status   int
		code     codes.Code
		inDetail string
	}{
		{"unknown model", "nope", good, 404, codes.NotFound, `no model named "nope"`},
		{"wrong dtype", "mix", with("x", engine.NewTensor([]int64{2, 3}, []int32{1, 2, 3, 4, 5, 6})), 400, codes.InvalidArgument, `input "x": the model takes FP32, got INT32`},
		{"wrong rank", "mix", with("x", engine.NewTensor([]int64{6}, []float32{1, 2, 3, 4, 5, 6})), 400, codes.InvalidArgument, `input "x": the model takes shape [-1,3], got [6]`},
		{"wrong fixed dimension", "mix", with("x", engine.NewTensor([]int64{3, 2}, []float32{1, 2, 3, 4, 5, 6})), 400, codes.InvalidArgument, "takes shape [-1,3], got [3,2]"},
		{"wrong static FP16 shape", "mix", with("in_f16", engine.Tensor{DType: engine.FP16, Shape: []int64{1, 4}, Data: []uint16{1, 2, 3, 4}}), 400, codes.InvalidArgument, "takes shape [2,2], got [1,4]"},
		{"missing input", "mix", good[1:], 400, codes.InvalidArgument, `input "x" is missing`},
	} {
		t.Run("REST "+tc.name, func(t *testing.T) {
			body, _ := restRequest(t, tc.inputs, false)
			resp, data := postInfer(t, srv.URL+"/v2/models/"+tc.model+"/infer", body, -1)
			var p struct{ Detail, Error string }
			_ = json.Unmarshal(data, &p)
			if resp.StatusCode != tc.status || resp.Header.Get("Content-Type") != "application/problem+json" || p.Error != p.Detail || !strings.Contains(p.Detail, tc.inDetail) {
				t.Errorf("status %d (want %d) %s: %s", resp.StatusCode, tc.status, resp.Header.Get("Content-Type"), data)
			}
		})
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			req := &pb.ModelInferRequest{ModelName: tc.model}
			for _, in := range tc.inputs {
				b, _ := oip.AppendRaw(nil, in.Tensor)
				req.Inputs = append(req.Inputs, &pb.ModelInferRequest_InferInputTensor{Name: in.Name, Datatype: string(in.DType), Shape: in.Shape})
				req.RawInputContents = append(req.RawInputContents, b)
			}
			_, err := client.ModelInfer(context.Background(), req)
			if st := status.Convert(err); st.Code() != tc.code || !strings.Contains(st.Message(), tc.inDetail) {
				t.Errorf("status %v %q, want %v containing %q", st.Code(), st.Message(), tc.code, tc.inDetail)
			}
		})
	}

	// Malformed bodies and contents.
	for _, tc := range []struct {
		name, body string
		status     int
	}{
		{"not JSON", `{"inputs": [`, 400},
		{"data does not fit the shape", `{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1,2]}]}`, 400},
		{"unknown datatype", `{"inputs":[{"name":"x","shape":[1,3],"datatype":"F32","data":[1,2,3]}]}`, 400},
		{"too many elements", `{"inputs":[{"name":"x","shape":[100000000,3],"datatype":"FP32","data":[1]}]}`, 413},
	} {
		t.Run("REST "+tc.name, func(t *testing.T) {
			resp, data := postInfer(t, srv.URL+"/v2/models/mix/infer", []byte(tc.body), -1)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, data)
			}
		})
	}
	for _, tc := range []struct {
		name string
		req  *pb.ModelInferRequest
		code codes.Code
	}{
		{"contents of the wrong type", &pb.ModelInferRequest{ModelName: "mix", Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{1, 3}, Contents: &pb.InferTensorContents{Int64Contents: []int64{1, 2, 3}}}}}, codes.InvalidArgument},
		{"FP16 in contents", &pb.ModelInferRequest{ModelName: "mix", Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "in_f16", Datatype: "FP16", Shape: []int64{2, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2, 3, 4}}}}}, codes.InvalidArgument},
		{"raw for some inputs only", &pb.ModelInferRequest{ModelName: "mix", Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "x", Datatype: "FP32", Shape: []int64{1, 3}}, {Name: "y", Datatype: "FP32", Shape: []int64{1, 3}}}, RawInputContents: [][]byte{make([]byte, 12)}}, codes.InvalidArgument},
		{"UINT8 out of range", &pb.ModelInferRequest{ModelName: "mix", Inputs: []*pb.ModelInferRequest_InferInputTensor{
			{Name: "in_u8", Datatype: "UINT8", Shape: []int64{1}, Contents: &pb.InferTensorContents{UintContents: []uint32{256}}}}}, codes.InvalidArgument},
		{"no model name", &pb.ModelInferRequest{Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: "FP32", Shape: []int64{0, 3}}}}, codes.InvalidArgument},
	} {
		t.Run("gRPC "+tc.name, func(t *testing.T) {
			if _, err := client.ModelInfer(context.Background(), tc.req); status.Code(err) != tc.code {
				t.Errorf("ModelInfer = %v, want %v", err, tc.code)
			}
		})
	}
	// A known path with the wrong method is a 405 naming the right one.
	for path, allow := range map[string]string{"/v2/models/mix/infer": "POST", "/v2/models/mix/versions/3/ready": "GET"} {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != allow {
			t.Errorf("PUT %s: %d, Allow %q; want 405, %s", path, resp.StatusCode, resp.Header.Get("Allow"), allow)
		}
	}
	if _, err := client.ModelMetadata(context.Background(), &pb.ModelMetadataRequest{Name: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("ModelMetadata(nope) = %v", err)
	}
	// Not served: not ready, as Triton answers (REST: a 4xx).
	if r, err := client.ModelReady(context.Background(), &pb.ModelReadyRequest{Name: "mix", Version: "9"}); err != nil || r.GetReady() {
		t.Errorf("ModelReady(mix, 9) = %v, %v; want ready false", r, err)
	}
}

// Metadata, readiness, health and reflection on both transports.
func TestIntegrationOIPMetadata(t *testing.T) {
	srv, models := serveMix(t)
	outs := models[0].outputs
	conn, client := grpcClient(t, srv.GRPCAddr)
	ctx := context.Background()

	md, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "mix"})
	if err != nil {
		t.Fatal(err)
	}
	if md.GetName() != "mix" || !reflect.DeepEqual(md.GetVersions(), []string{"3"}) || md.GetPlatform() != oip.PlatformONNX ||
		len(md.GetInputs()) != 2+len(passThrough) || len(md.GetOutputs()) != len(outs) {
		t.Errorf("gRPC metadata %v", md)
	}
	if o := md.GetOutputs()[len(outs)-2]; o.GetName() != "out_f16" || o.GetDatatype() != "FP16" || !reflect.DeepEqual(o.GetShape(), []int64{2, 2}) {
		t.Errorf("FP16 output metadata %v", o)
	}
	resp, err := http.Get(srv.URL + "/v2/models/mix/versions/3")
	if err != nil {
		t.Fatal(err)
	}
	var rest oip.ModelMetadata
	json.NewDecoder(resp.Body).Decode(&rest)
	resp.Body.Close()
	if rest.Name != "mix" || len(rest.Inputs) != len(md.GetInputs()) || rest.Inputs[0].Name != "x" || !reflect.DeepEqual(rest.Inputs[0].Shape, []int64{-1, 3}) {
		t.Errorf("REST metadata %+v", rest)
	}
	ocrMD, err := client.ModelMetadata(ctx, &pb.ModelMetadataRequest{Name: "ocr-eng"})
	if err != nil || ocrMD.GetPlatform() != oip.PlatformOCR || ocrMD.GetInputs()[0].GetDatatype() != "BYTES" {
		t.Errorf("OCR model metadata %v, %v", ocrMD, err)
	}
	sm, err := client.ServerMetadata(ctx, &pb.ServerMetadataRequest{})
	if err != nil || sm.GetName() != "visionserve" {
		t.Errorf("server metadata %v, %v", sm, err)
	}
	for _, check := range []func() (bool, error){
		func() (bool, error) {
			r, err := client.ServerLive(ctx, &pb.ServerLiveRequest{})
			return r.GetLive(), err
		},
		func() (bool, error) {
			r, err := client.ServerReady(ctx, &pb.ServerReadyRequest{})
			return r.GetReady(), err
		},
		func() (bool, error) {
			r, err := client.ModelReady(ctx, &pb.ModelReadyRequest{Name: "mix-batched"})
			return r.GetReady(), err
		},
	} {
		if ok, err := check(); !ok || err != nil {
			t.Errorf("a liveness/readiness call: %v, %v", ok, err)
		}
	}
	h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "inference.GRPCInferenceService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v, %v", h, err)
	}
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	ref, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var services []string
	for _, s := range ref.GetListServicesResponse().GetService() {
		services = append(services, s.GetName())
	}
	if !strings.Contains(strings.Join(services, " "), "inference.GRPCInferenceService") {
		t.Errorf("reflection lists %v", services)
	}
	stream.CloseSend()

	// Draining: health and readiness turn false before the server stops.
	srv.Stop(t)
	if _, err := client.ServerLive(ctx, &pb.ServerLiveRequest{}); err == nil {
		t.Error("the gRPC server still answers after Shutdown")
	}
}

// An OCR model answers the inference protocol with the /v1/ocr result.
func TestIntegrationOIPOCRModel(t *testing.T) {
	srv, _ := serveMix(t)
	_, client := grpcClient(t, srv.GRPCAddr)
	img, err := os.ReadFile(filepath.Join(testenv.Shared(t, "data/ocr/lines"), "book/0005/010001.bin.png"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "ocr-eng",
		Parameters: map[string]*pb.InferParameter{"mode": {ParameterChoice: &pb.InferParameter_StringParam{StringParam: "line"}}},
		Inputs:     []*pb.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "BYTES", Shape: []int64{1}, Contents: &pb.InferTensorContents{BytesContents: [][]byte{img}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var texts, results [][]byte
	for i, o := range resp.GetOutputs() {
		tt, err := oip.DecodeRaw(o.GetName(), engine.BYTES, o.GetShape(), 1, resp.GetRawOutputContents()[i])
		if err != nil {
			t.Fatal(err)
		}
		switch o.GetName() {
		case "text":
			texts = tt.Data.([][]byte)
		case "result":
			results = tt.Data.([][]byte)
		}
	}
	var res struct {
		Text  string
		Pages []struct {
			Mode  string
			Lines []struct{ Review string }
		}
	}
	if len(texts) != 1 || len(results) != 1 || json.Unmarshal(results[0], &res) != nil {
		t.Fatalf("outputs %v", resp.GetOutputs())
	}
	if res.Text != string(texts[0]) || len(strings.TrimSpace(res.Text)) < 10 || res.Pages[0].Mode != "line" || res.Pages[0].Lines[0].Review == "" {
		t.Errorf("text %q, result %s", texts[0], results[0])
	}
	// The same image through /v1/ocr reads the same.
	r, err := http.Post(srv.URL+"/v1/ocr?mode=line&format=text", "image/png", bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if strings.TrimSpace(string(v1)) != strings.TrimSpace(res.Text) {
		t.Errorf("/v1/ocr read %q, the inference protocol %q", v1, res.Text)
	}
	// A broken image is a client error.
	_, err = client.ModelInfer(context.Background(), &pb.ModelInferRequest{ModelName: "ocr-eng",
		Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "image", Datatype: "BYTES", Shape: []int64{1}, Contents: &pb.InferTensorContents{BytesContents: [][]byte{[]byte("not an image")}}}}})
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("a broken image: %v", err)
	}
}

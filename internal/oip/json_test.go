package oip_test

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/oip"
)

func decodeOne(t *testing.T, body string) (*oip.InferRequest, error) {
	t.Helper()
	return oip.DecodeRequest([]byte(body), -1, oip.DefaultLimits())
}

func TestDecodeRequestData(t *testing.T) {
	for _, tc := range []struct {
		name  string
		input string // one input object
		want  engine.Tensor
	}{
		{"flat FP32", `{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2.5,-3e2,4]}`,
			engine.NewTensor([]int64{2, 2}, []float32{1, 2.5, -300, 4})},
		{"nested FP32", `{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2.5],[-3e2,4]]}`,
			engine.NewTensor([]int64{2, 2}, []float32{1, 2.5, -300, 4})},
		{"deeply nested INT64", `{"name":"x","shape":[1,2,2],"datatype":"INT64","data":[[[9007199254740993,-1],[0,2]]]}`,
			engine.NewTensor([]int64{1, 2, 2}, []int64{9007199254740993, -1, 0, 2})},
		{"scalar", `{"name":"x","shape":[],"datatype":"INT32","data":7}`,
			engine.NewTensor([]int64{}, []int32{7})},
		{"special floats", `{"name":"x","shape":[3],"datatype":"FP64","data":["Infinity","-Infinity",1e-320]}`,
			engine.NewTensor([]int64{3}, []float64{math.Inf(1), math.Inf(-1), 1e-320})},
		{"FP16", `{"name":"x","shape":[4],"datatype":"FP16","data":[1,-2,65504,5.960464477539063e-08]}`,
			engine.Tensor{DType: engine.FP16, Shape: []int64{4}, Data: []uint16{0x3c00, 0xc000, 0x7bff, 0x0001}}},
		{"UINT8 bounds", `{"name":"x","shape":[2],"datatype":"UINT8","data":[0,255]}`,
			engine.NewTensor([]int64{2}, []uint8{0, 255})},
		{"INT8 bounds", `{"name":"x","shape":[2],"datatype":"INT8","data":[-128,127]}`,
			engine.NewTensor([]int64{2}, []int8{-128, 127})},
		{"UINT64 max", `{"name":"x","shape":[1],"datatype":"UINT64","data":[18446744073709551615]}`,
			engine.NewTensor([]int64{1}, []uint64{math.MaxUint64})},
		{"BOOL", `{"name":"x","shape":[1,3],"datatype":"BOOL","data":[[true,false,true]]}`,
			engine.NewTensor([]int64{1, 3}, []bool{true, false, true})},
		{"BYTES", `{"name":"x","shape":[3],"datatype":"BYTES","data":["a","h\u00e9\"llo",""]}`,
			engine.Tensor{DType: engine.BYTES, Shape: []int64{3}, Data: [][]byte{[]byte("a"), []byte("hé\"llo"), {}}}},
		{"BYTES base64", `{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"content_type":"base64"},"data":["AP8B"]}`,
			engine.Tensor{DType: engine.BYTES, Shape: []int64{1}, Data: [][]byte{{0, 0xff, 1}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := decodeOne(t, `{"inputs":[`+tc.input+`]}`)
			if err != nil {
				t.Fatal(err)
			}
			got := req.Inputs[0].Tensor
			if got.DType != tc.want.DType || !reflect.DeepEqual(got.Shape, tc.want.Shape) || !reflect.DeepEqual(got.Data, tc.want.Data) {
				t.Errorf("got %s %v %#v\nwant %s %v %#v", got.DType, got.Shape, got.Data, tc.want.DType, tc.want.Shape, tc.want.Data)
			}
		})
	}
}

func TestDecodeRequestErrors(t *testing.T) {
	for _, tc := range []struct {
		name, body, wantInErr string
		tooLarge              bool
	}{
		{"not JSON", `{"inputs":`, "not a valid inference request", false},
		{"unknown field", `{"inputs":[],"input":[]}`, "unknown field", false},
		{"no inputs", `{"inputs":[]}`, "no inputs", false},
		{"unknown datatype", `{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}`, `unknown datatype "FLOAT"`, false},
		{"no shape", `{"inputs":[{"name":"x","datatype":"FP32","data":[1]}]}`, "no shape", false},
		{"no data", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32"}]}`, "no data", false},
		{"too few", `{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2]}]}`, "has 2 elements; the shape needs 3", false},
		{"too many", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1,2]}]}`, "more than the 1 elements", false},
		{"ragged", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2,3],[4]]}]}`, "has 3 elements", false},
		{"nested beyond rank", `{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[[1,2],[3,4]]}]}`, "nested 2 deep", false},
		{"mixed levels", `{"inputs":[{"name":"x","shape":[2,1],"datatype":"FP32","data":[1,[2]]}]}`, "mixes", false},
		{"negative dimension", `{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[]}]}`, "negative", false},
		{"zero dimension", `{"inputs":[{"name":"x","shape":[1,0,3],"datatype":"FP32","data":[]}]}`, "dimension 1 is 0", false},
		{"float for int", `{"inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1.5]}]}`, "not an INT32", false},
		{"INT8 overflow", `{"inputs":[{"name":"x","shape":[1],"datatype":"INT8","data":[128]}]}`, "not an INT8", false},
		{"negative UINT8", `{"inputs":[{"name":"x","shape":[1],"datatype":"UINT8","data":[-1]}]}`, "not a UINT8", false},
		{"FP32 overflow", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1e39]}]}`, "outside the FP32 range", false},
		{"FP16 overflow", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP16","data":[70000]}]}`, "outside the FP16 range", false},
		{"string for number", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":["1"]}]}`, "not a number", false},
		{"null", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[null]}]}`, "null", false},
		{"number for bool", `{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}`, "not a boolean", false},
		{"bad base64", `{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"content_type":"base64"},"data":["!!"]}]}`, "not base64", false},
		{"bad content type", `{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"content_type":"hex"},"data":["00"]}]}`, "content_type", false},
		{"object parameter", `{"parameters":{"a":{}},"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1]}]}`, "boolean, number or string", false},
		{"huge shape, tiny body", `{"inputs":[{"name":"x","shape":[1000000],"datatype":"FP32","data":[1]}]}`, "too short", false},
		{"element limit", `{"inputs":[{"name":"x","shape":[65536,65536],"datatype":"FP32","data":[1]}]}`, "more elements", true},
		{"overflowing shape", `{"inputs":[{"name":"x","shape":[9223372036854775807,4],"datatype":"FP32","data":[1]}]}`, "more elements", true},
		{"unclaimed binary", ``, "", false},
	} {
		if tc.body == "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeOne(t, tc.body)
			if err == nil {
				t.Fatal("decoded without error")
			}
			want := oip.ErrInvalidRequest
			if tc.tooLarge {
				want = oip.ErrTooLarge
			}
			if !errors.Is(err, want) {
				t.Errorf("error %v does not wrap %v", err, want)
			}
			if !strings.Contains(err.Error(), tc.wantInErr) {
				t.Errorf("error %q does not mention %q", err, tc.wantInErr)
			}
		})
	}
}

func TestDecodeRequestLimits(t *testing.T) {
	lim := oip.Limits{MaxTensors: 2, MaxElements: 10}
	body := `{"inputs":[{"name":"a","shape":[6],"datatype":"INT32","data":[1,2,3,4,5,6]},{"name":"b","shape":[5],"datatype":"INT32","data":[1,2,3,4,5]}]}`
	if _, err := oip.DecodeRequest([]byte(body), -1, lim); !errors.Is(err, oip.ErrTooLarge) {
		t.Errorf("11 elements over two inputs with a limit of 10: %v", err)
	}
	three := `{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[1]}],"outputs":[{"name":"x"},{"name":"y"}]}`
	if _, err := oip.DecodeRequest([]byte(three), -1, lim); !errors.Is(err, oip.ErrTooLarge) {
		t.Errorf("3 tensors with a limit of 2: %v", err)
	}
}

// binaryBody builds a body with the binary tensor extension.
func binaryBody(t *testing.T, js string, blobs ...[]byte) ([]byte, int) {
	t.Helper()
	b := []byte(js)
	for _, blob := range blobs {
		b = append(b, blob...)
	}
	return b, len(js)
}

func TestDecodeRequestBinary(t *testing.T) {
	x := engine.NewTensor([]int64{2, 2}, []float32{1, -2, float32(math.Inf(1)), 4})
	s := engine.Tensor{DType: engine.BYTES, Shape: []int64{2}, Data: [][]byte{{0, 1, 2}, []byte("png")}}
	h := engine.Tensor{DType: engine.FP16, Shape: []int64{2}, Data: []uint16{0x3c00, 0x7e00}}
	rawX, _ := oip.AppendRaw(nil, x)
	rawS, _ := oip.AppendRaw(nil, s)
	rawH, _ := oip.AppendRaw(nil, h)
	js := fmt.Sprintf(`{"inputs":[`+
		`{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":%d}},`+
		`{"name":"j","shape":[1],"datatype":"INT32","data":[5]},`+
		`{"name":"s","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":%d}},`+
		`{"name":"h","shape":[2],"datatype":"FP16","parameters":{"binary_data_size":%d}}]}`, len(rawX), len(rawS), len(rawH))
	body, hl := binaryBody(t, js, rawX, rawS, rawH)
	req, err := oip.DecodeRequest(body, hl, oip.DefaultLimits())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []engine.Tensor{x, engine.NewTensor([]int64{1}, []int32{5}), s, h} {
		got := req.Inputs[i].Tensor
		if got.DType != want.DType || !reflect.DeepEqual(got.Shape, want.Shape) || fmt.Sprint(got.Data) != fmt.Sprint(want.Data) {
			t.Errorf("input %d: got %v %v %v, want %v %v %v", i, got.DType, got.Shape, got.Data, want.DType, want.Shape, want.Data)
		}
	}

	for _, tc := range []struct {
		name string
		js   string
		bin  []byte
		hl   int
	}{
		{"header past the body", `{"inputs":[]}`, nil, 100},
		{"size past the data", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":17}}]}`, rawX, -2},
		{"size does not match the shape", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":12}}]}`, rawX[:12], -2},
		{"unclaimed bytes", `{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, append(rawX, 0), -2},
		{"data and binary", `{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[1],"parameters":{"binary_data_size":4}}]}`, rawX[:4], -2},
		{"BYTES length past the end", `{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":5}}]}`, []byte{9, 0, 0, 0, 'a'}, -2},
		{"BOOL not 0 or 1", `{"inputs":[{"name":"b","shape":[1],"datatype":"BOOL","parameters":{"binary_data_size":1}}]}`, []byte{2}, -2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, hl := binaryBody(t, tc.js, tc.bin)
			if tc.hl != -2 {
				hl = tc.hl
			}
			if _, err := oip.DecodeRequest(body, hl, oip.DefaultLimits()); !errors.Is(err, oip.ErrInvalidRequest) {
				t.Errorf("DecodeRequest = %v, want ErrInvalidRequest", err)
			}
		})
	}
}

// Every dtype written by EncodeResponse reads back with DecodeRequest to
// exactly the same values, as JSON and as binary.
func TestEncodeDecodeRoundTrip(t *testing.T) {
	shape := []int64{2, 3}
	tensors := []engine.Tensor{
		engine.NewTensor(shape, []float32{1.5, -2, math.MaxFloat32, math.SmallestNonzeroFloat32, float32(math.Inf(-1)), 0.1}),
		engine.NewTensor(shape, []float64{1.5, -2, math.MaxFloat64, math.SmallestNonzeroFloat64, math.Inf(1), 0.1}),
		{DType: engine.FP16, Shape: shape, Data: []uint16{0x3c00, 0xc000, 0x7bff, 0x0001, 0xfc00, 0x2e66}},
		engine.NewTensor(shape, []int8{-128, -1, 0, 1, 2, 127}),
		engine.NewTensor(shape, []int16{-32768, -1, 0, 1, 2, 32767}),
		engine.NewTensor(shape, []int32{math.MinInt32, -1, 0, 1, 2, math.MaxInt32}),
		engine.NewTensor(shape, []int64{math.MinInt64, -1, 0, 1, 2, math.MaxInt64}),
		engine.NewTensor(shape, []uint8{0, 1, 2, 3, 254, 255}),
		engine.NewTensor(shape, []uint16{0, 1, 2, 3, 65534, 65535}),
		engine.NewTensor(shape, []uint32{0, 1, 2, 3, math.MaxUint32 - 1, math.MaxUint32}),
		engine.NewTensor(shape, []uint64{0, 1, 2, 3, math.MaxUint64 - 1, math.MaxUint64}),
		engine.NewTensor(shape, []bool{true, false, false, true, true, false}),
		{DType: engine.BYTES, Shape: shape, Data: [][]byte{[]byte("a"), {}, []byte("héllo"), []byte("x\"y\n"), []byte("<&>"), []byte("z")}},
		{DType: engine.BYTES, Shape: shape, Data: [][]byte{{0xff, 0}, {}, []byte("h"), {1}, {2}, {3}}},
	}
	for _, binary := range []bool{false, true} {
		for _, tt := range tensors {
			t.Run(fmt.Sprintf("%s binary=%v", tt.DType, binary), func(t *testing.T) {
				resp := &oip.InferResponse{ModelName: "m", ModelVersion: "1", ID: "r1", Outputs: []oip.Output{{Name: "y", Tensor: tt}}}
				body, hl, err := oip.EncodeResponse(resp, []bool{binary})
				if err != nil {
					t.Fatal(err)
				}
				if (hl >= 0) != binary {
					t.Fatalf("headerLen %d with binary=%v", hl, binary)
				}
				// Turn the response's output into a request's input:
				// the same JSON shape but for the envelope.
				js := body
				if hl >= 0 {
					js = body[:hl]
				}
				out := string(js)
				i := strings.Index(out, `"outputs":[`)
				reqJS := `{"inputs":[` + strings.Replace(out[i+len(`"outputs":[`):], `"name":"y"`, `"name":"x"`, 1)
				reqBody := append([]byte(reqJS), body[len(js):]...)
				reqHL := -1
				if hl >= 0 {
					reqHL = len(reqJS)
				}
				req, err := oip.DecodeRequest(reqBody, reqHL, oip.DefaultLimits())
				if err != nil {
					t.Fatalf("%v\nbody: %s", err, js)
				}
				got := req.Inputs[0].Tensor
				if got.DType != tt.DType || !reflect.DeepEqual(got.Shape, tt.Shape) || !reflect.DeepEqual(got.Data, tt.Data) {
					t.Errorf("round trip: got %v %v %#v\nwant %v %v %#v\nbody: %s", got.DType, got.Shape, got.Data, tt.DType, tt.Shape, tt.Data, js)
				}
			})
		}
	}
}

// DecodeResponse reads back what EncodeResponse writes, JSON and binary.
func TestDecodeResponse(t *testing.T) {
	resp := &oip.InferResponse{ModelName: "m", ModelVersion: "2", ID: "x", Outputs: []oip.Output{
		{Name: "a", Tensor: engine.NewTensor([]int64{2, 1}, []float32{0.5, float32(math.Inf(1))})},
		{Name: "b", Tensor: engine.Tensor{DType: engine.BYTES, Shape: []int64{2}, Data: [][]byte{{0xff}, []byte("ok")}}},
		{Name: "c", Tensor: engine.NewTensor([]int64{1}, []uint16{7})},
	}}
	for _, binary := range [][]bool{nil, {true, false, true}, {false, true, false}} {
		body, hl, err := oip.EncodeResponse(resp, binary)
		if err != nil {
			t.Fatal(err)
		}
		got, err := oip.DecodeResponse(body, hl, oip.DefaultLimits())
		if err != nil {
			t.Fatalf("binary %v: %v\n%s", binary, err, body)
		}
		if got.ModelName != "m" || got.ModelVersion != "2" || got.ID != "x" || len(got.Outputs) != 3 {
			t.Fatalf("binary %v: %+v", binary, got)
		}
		for i, o := range got.Outputs {
			w := resp.Outputs[i]
			if o.Name != w.Name || o.DType != w.DType || !reflect.DeepEqual(o.Shape, w.Shape) || !reflect.DeepEqual(o.Data, w.Data) {
				t.Errorf("binary %v: output %d = %+v, want %+v", binary, i, o, w)
			}
		}
	}
}

func TestEncodeResponseShape(t *testing.T) {
	resp := &oip.InferResponse{ModelName: "m", ModelVersion: "2", Outputs: []oip.Output{
		{Name: "a", Tensor: engine.NewTensor([]int64{2}, []float32{0.5, float32(math.NaN())})},
		{Name: "b", Tensor: engine.NewTensor([]int64{1}, []int64{7})},
	}}
	body, hl, err := oip.EncodeResponse(resp, []bool{false, true})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model_name":"m","model_version":"2","outputs":[` +
		`{"name":"a","datatype":"FP32","shape":[2],"data":[0.5,"NaN"]},` +
		`{"name":"b","datatype":"INT64","shape":[1],"parameters":{"binary_data_size":8}}]}`
	if string(body[:hl]) != want {
		t.Errorf("JSON part\n got %s\nwant %s", body[:hl], want)
	}
	if !bytes.Equal(body[hl:], []byte{7, 0, 0, 0, 0, 0, 0, 0}) {
		t.Errorf("binary part %v", body[hl:])
	}
}

func TestBinaryOutputs(t *testing.T) {
	resp := &oip.InferResponse{Outputs: []oip.Output{{Name: "a"}, {Name: "b"}}}
	for _, tc := range []struct {
		req  oip.InferRequest
		want []bool
	}{
		{oip.InferRequest{}, []bool{false, false}},
		{oip.InferRequest{Parameters: oip.Parameters{"binary_data_output": true}}, []bool{true, true}},
		{oip.InferRequest{Outputs: []oip.RequestedOutput{{Name: "b", Parameters: oip.Parameters{"binary_data": true}}}}, []bool{false, true}},
		{oip.InferRequest{Parameters: oip.Parameters{"binary_data_output": true},
			Outputs: []oip.RequestedOutput{{Name: "a", Parameters: oip.Parameters{"binary_data": false}}}}, []bool{false, true}},
	} {
		got, err := oip.BinaryOutputs(&tc.req, resp)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("BinaryOutputs(%+v) = %v, %v; want %v", tc.req, got, err, tc.want)
		}
	}
	bad := oip.InferRequest{Parameters: oip.Parameters{"binary_data_output": "yes"}}
	if _, err := oip.BinaryOutputs(&bad, resp); !errors.Is(err, oip.ErrInvalidRequest) {
		t.Errorf("a string binary_data_output: %v", err)
	}
}

// Every half value survives half -> float32 -> half, and rounding is to
// the nearest half with ties to even.
func TestHalfConversion(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		f := oip.HalfToFloat32(uint16(h))
		if math.IsNaN(float64(f)) {
			if got := oip.HalfFromFloat32(f); got&0x7c00 != 0x7c00 || got&0x3ff == 0 {
				t.Fatalf("NaN %#04x came back as %#04x", h, got)
			}
			continue
		}
		if got := oip.HalfFromFloat32(f); got != uint16(h) {
			t.Fatalf("%#04x -> %v -> %#04x", h, f, got)
		}
	}
	for _, tc := range []struct {
		f    float64
		want uint16
	}{
		{1 + 1.0/2048, 0x3c00},                // halfway between 1 and the next half: to even (1)
		{1 + 3.0/2048, 0x3c02},                // halfway, odd below: up
		{1 + 1.0/2048 + 1e-12, 0x3c01},        // just above halfway: up
		{65519, 0x7bff},                       // below the overflow threshold
		{65520, 0x7c00},                       // rounds to infinity
		{math.Copysign(0, -1), 0x8000},        // negative zero
		{math.Ldexp(1, -25), 0},               // half the smallest subnormal: to even (0)
		{math.Ldexp(1, -25) * 1.0001, 0x0001}, // above it: the smallest subnormal
		{math.Ldexp(1023.5, -24), 0x0400},     // rounds up into the smallest normal
		{1e-30, 0},
	} {
		if got := oip.HalfFromFloat64(tc.f); got != tc.want {
			t.Errorf("HalfFromFloat64(%v) = %#04x, want %#04x", tc.f, got, tc.want)
		}
	}
}

func TestParametersAccessors(t *testing.T) {
	p := oip.Parameters{"s": "x", "b": true, "i": int64(3), "f": 2.0, "g": 2.5}
	if v, ok, err := p.String("s"); v != "x" || !ok || err != nil {
		t.Errorf("String(s) = %q %v %v", v, ok, err)
	}
	if _, _, err := p.String("b"); !errors.Is(err, oip.ErrInvalidRequest) {
		t.Errorf("String of a bool: %v", err)
	}
	if v, err := p.Bool("missing"); v || err != nil {
		t.Errorf("Bool(missing) = %v %v", v, err)
	}
	if v, ok, err := p.Int("f"); v != 2 || !ok || err != nil {
		t.Errorf("Int(2.0) = %v %v %v", v, ok, err)
	}
	if _, _, err := p.Int("g"); !errors.Is(err, oip.ErrInvalidRequest) {
		t.Errorf("Int(2.5): %v", err)
	}
}

// Decoded tensors never alias the bytes they came from (a pooled body).
func TestDecodeRawCopies(t *testing.T) {
	for _, dt := range []engine.DType{engine.BYTES, engine.UINT8, engine.INT8, engine.BOOL} {
		raw := []byte{1, 0, 0, 0, 1}
		n := int64(5)
		if dt == engine.BYTES {
			n = 1
		}
		tt, err := oip.DecodeRaw("x", dt, []int64{n}, n, raw)
		if err != nil {
			t.Fatal(err)
		}
		before := fmt.Sprint(tt.Data)
		for i := range raw {
			raw[i] = 0
		}
		if after := fmt.Sprint(tt.Data); after != before {
			t.Errorf("%s: overwriting the input changed the tensor from %s to %s", dt, before, after)
		}
	}
}

func TestRawBytesErrors(t *testing.T) {
	for _, raw := range [][]byte{
		{1, 0, 0},                // a length cut short
		{5, 0, 0, 0, 'a'},        // an element cut short
		{1, 0, 0, 0, 'a', 0},     // bytes left over
		{0xff, 0xff, 0xff, 0xff}, // a huge length
	} {
		if _, err := oip.DecodeRaw("x", engine.BYTES, []int64{1}, 1, raw); !errors.Is(err, oip.ErrInvalidRequest) {
			t.Errorf("DecodeRaw(%v) = %v, want ErrInvalidRequest", raw, err)
		}
	}
	// More elements claimed than 4-byte lengths fit: refused before allocating.
	if _, err := oip.DecodeRaw("x", engine.BYTES, []int64{1 << 40}, 1<<40, make([]byte, 8)); !errors.Is(err, oip.ErrInvalidRequest) {
		t.Errorf("2^40 BYTES elements in 8 bytes: %v", err)
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}`), -1)
	f.Add([]byte(`{"id":"a","parameters":{"k":1},"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","data":["\u00e9"]}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}}]}`+"\x01\x00\x00\x00\x00\x00\x00\x00"), 86)
	f.Add([]byte(`{"inputs":[{"name":"x","shape":[],"datatype":"FP16","data":1.5}]}`), -1)
	lim := oip.Limits{MaxTensors: 8, MaxElements: 1 << 16}
	f.Fuzz(func(t *testing.T, body []byte, headerLen int) {
		req, err := oip.DecodeRequest(body, headerLen, lim)
		if err != nil {
			if !errors.Is(err, oip.ErrInvalidRequest) && !errors.Is(err, oip.ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalidRequest nor ErrTooLarge", err)
			}
			return
		}
		var total int64
		for _, in := range req.Inputs {
			if err := in.Validate(); err != nil {
				t.Fatalf("decoded an invalid tensor: %v", err)
			}
			total += in.Elements()
		}
		if total > lim.MaxElements {
			t.Fatalf("decoded %d elements past the limit of %d", total, lim.MaxElements)
		}
	})
}

func FuzzDecodeRaw(f *testing.F) {
	f.Add("BYTES", int64(2), []byte{1, 0, 0, 0, 'a', 0, 0, 0, 0})
	f.Add("FP32", int64(1), []byte{0, 0, 0x80, 0x3f})
	f.Add("BOOL", int64(2), []byte{0, 1})
	f.Fuzz(func(t *testing.T, dtype string, n int64, raw []byte) {
		dt, err := oip.ParseDType(dtype)
		if err != nil || n < 0 || n > 1<<16 {
			return
		}
		tt, err := oip.DecodeRaw("x", dt, []int64{n}, n, raw)
		if err != nil {
			if !errors.Is(err, oip.ErrInvalidRequest) {
				t.Fatalf("error %v is not ErrInvalidRequest", err)
			}
			return
		}
		if err := tt.Validate(); err != nil {
			t.Fatal(err)
		}
		again, err := oip.AppendRaw(nil, tt)
		if err != nil || !bytes.Equal(again, raw) {
			t.Fatalf("raw form does not round-trip: %v, %v vs %v", err, again, raw)
		}
	})
}

func ExampleDecodeRequest() {
	req, err := oip.DecodeRequest([]byte(`{"id":"42","inputs":[{"name":"x","shape":[1,2],"datatype":"INT32","data":[[1,2]]}]}`), -1, oip.DefaultLimits())
	if err != nil {
		panic(err)
	}
	fmt.Println(req.ID, req.Inputs[0].Name, req.Inputs[0].DType, req.Inputs[0].Shape, req.Inputs[0].Data)
	out, _, _ := oip.EncodeResponse(&oip.InferResponse{ModelName: "m", ID: req.ID, Outputs: []oip.Output{{Name: "y", Tensor: req.Inputs[0].Tensor}}}, nil)
	fmt.Println(string(out))
	// Output:
	// 42 x INT32 [1 2] [1 2]
	// {"model_name":"m","id":"42","outputs":[{"name":"y","datatype":"INT32","shape":[1,2],"data":[1,2]}]}
}

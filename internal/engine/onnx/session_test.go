package onnx_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/engine/onnx/onnxtest"
	"github.com/visionserve/visionserve/internal/testenv"
)

func oneSession() onnx.Options {
	o := onnx.DefaultOptions()
	o.Sessions = 1
	return o
}

func TestIntegrationModelInfoSharedModels(t *testing.T) {
	onnxtest.Init(t)
	for _, tc := range []struct {
		file    string
		inputs  []engine.TensorInfo
		outputs []engine.TensorInfo
	}{
		{
			file:    "models/ocr/en_PP-OCRv3_det_infer.onnx",
			inputs:  []engine.TensorInfo{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 3, -1, -1}}},
			outputs: []engine.TensorInfo{{Name: "sigmoid_0.tmp_0", DType: engine.FP32, Shape: []int64{-1, 1, -1, -1}}},
		},
		{
			file:    "models/ocr/en_number_mobile_v2.0_rec_infer.onnx",
			inputs:  []engine.TensorInfo{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 3, 32, -1}}},
			outputs: []engine.TensorInfo{{Name: "save_infer_model/scale_0.tmp_1", DType: engine.FP32, Shape: []int64{-1, -1, 97}}},
		},
		{
			file:    "models/ocr/ch_ppocr_mobile_v2.0_cls_infer.onnx",
			inputs:  []engine.TensorInfo{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 3, -1, -1}}},
			outputs: []engine.TensorInfo{{Name: "softmax_0.tmp_0", DType: engine.FP32, Shape: []int64{-1, 2}}},
		},
	} {
		t.Run(tc.file, func(t *testing.T) {
			model, err := os.ReadFile(testenv.Shared(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			p, err := onnx.NewPool(model, oneSession())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(context.Background())
			if !infosEqual(p.Inputs(), tc.inputs) || !infosEqual(p.Outputs(), tc.outputs) {
				t.Errorf("metadata = %+v -> %+v\nwant       %+v -> %+v", p.Inputs(), p.Outputs(), tc.inputs, tc.outputs)
			}
		})
	}
}

func infosEqual(a, b []engine.TensorInfo) bool {
	return slices.EqualFunc(a, b, func(x, y engine.TensorInfo) bool {
		return x.Name == y.Name && x.DType == y.DType && slices.Equal(x.Shape, y.Shape)
	})
}

func TestIntegrationTensorRoundTrip(t *testing.T) {
	onnxtest.Init(t)
	shape := []int64{2, 3}
	for _, tc := range []engine.Tensor{
		engine.NewTensor(shape, []float32{1.5, -2, 3, 4, 5, 6e10}),
		engine.NewTensor(shape, []float64{1.5, -2, 3, 4, 5, 6e100}),
		{DType: engine.FP16, Shape: shape, Data: []uint16{0x3c00, 0xc000, 0x7bff, 0, 1, 0x8001}},
		engine.NewTensor(shape, []int8{-128, -1, 0, 1, 2, 127}),
		engine.NewTensor(shape, []int16{-32768, -1, 0, 1, 2, 32767}),
		engine.NewTensor(shape, []int32{-1 << 31, -1, 0, 1, 2, 1<<31 - 1}),
		engine.NewTensor(shape, []int64{-1 << 63, -1, 0, 1, 2, 1<<63 - 1}),
		engine.NewTensor(shape, []uint8{0, 1, 2, 3, 254, 255}),
		engine.NewTensor(shape, []uint16{0, 1, 2, 3, 65534, 65535}),
		engine.NewTensor(shape, []uint32{0, 1, 2, 3, 1<<32 - 2, 1<<32 - 1}),
		engine.NewTensor(shape, []uint64{0, 1, 2, 3, 1<<64 - 2, 1<<64 - 1}),
		engine.NewTensor(shape, []bool{true, false, false, true, true, false}),
		{DType: engine.BYTES, Shape: shape, Data: [][]byte{[]byte("a"), {}, []byte("héllo"), []byte("x y"), {0xff, 0x01}, []byte("z")}},
	} {
		t.Run(string(tc.DType), func(t *testing.T) {
			dims := []int64{-1, 3}
			if tc.DType == engine.FP16 {
				dims = shape // see TestIntegrationFP16DynamicOutputRejected
			}
			model, err := onnxtest.Identity(tc.DType, dims)
			if err != nil {
				t.Fatal(err)
			}
			s, err := onnx.NewSession(model, onnx.DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			wantInfo := []engine.TensorInfo{{Name: "x", DType: tc.DType, Shape: dims}}
			if !infosEqual(s.Inputs(), wantInfo) {
				t.Errorf("Inputs() = %+v, want %+v", s.Inputs(), wantInfo)
			}
			out, err := s.Run(context.Background(), []engine.Tensor{tc})
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != 1 {
				t.Fatalf("got %d outputs, want 1", len(out))
			}
			if out[0].DType != tc.DType || !slices.Equal(out[0].Shape, shape) {
				t.Errorf("output %s %v, want %s %v", out[0].DType, out[0].Shape, tc.DType, shape)
			}
			if got, want := fmt.Sprint(out[0].Data), fmt.Sprint(tc.Data); got != want {
				t.Errorf("output data %s, want %s", got, want)
			}
		})
	}
}

// addModel computes z = x + y on float32 tensors of shape [-1, 4].
func addModel(t *testing.T) []byte {
	t.Helper()
	m, err := onnxtest.Model(
		[]onnxtest.Node{{Op: "Add", Inputs: []string{"x", "y"}, Outputs: []string{"z"}}},
		[]onnxtest.Value{{Name: "x", DType: engine.FP32, Shape: []int64{-1, 4}}, {Name: "y", DType: engine.FP32, Shape: []int64{-1, 4}}},
		[]onnxtest.Value{{Name: "z", DType: engine.FP32, Shape: []int64{-1, 4}}})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestIntegrationInvalidInputs(t *testing.T) {
	onnxtest.Init(t)
	p, err := onnx.NewPool(addModel(t), oneSession())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ok := engine.NewTensor([]int64{1, 4}, []float32{1, 2, 3, 4})
	for _, tc := range []struct {
		name   string
		inputs []engine.Tensor
	}{
		{"too few inputs", []engine.Tensor{ok}},
		{"too many inputs", []engine.Tensor{ok, ok, ok}},
		{"wrong dtype", []engine.Tensor{ok, engine.NewTensor([]int64{1, 4}, []int32{1, 2, 3, 4})}},
		{"wrong rank", []engine.Tensor{ok, engine.NewTensor([]int64{4}, []float32{1, 2, 3, 4})}},
		{"wrong fixed dimension", []engine.Tensor{ok, engine.NewTensor([]int64{2, 2}, []float32{1, 2, 3, 4})}},
		{"data shorter than shape", []engine.Tensor{ok, engine.NewTensor([]int64{2, 4}, []float32{1, 2, 3, 4})}},
		{"dtype label lies about data", []engine.Tensor{ok, {DType: engine.FP32, Shape: []int64{1, 4}, Data: []int32{1, 2, 3, 4}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := p.Run(context.Background(), tc.inputs); !errors.Is(err, onnx.ErrInvalidInput) {
				t.Errorf("Pool.Run = %v, want ErrInvalidInput", err)
			}
			s, err := p.Acquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer p.Release(s)
			if _, err := s.Run(context.Background(), tc.inputs); !errors.Is(err, onnx.ErrInvalidInput) {
				t.Errorf("Session.Run = %v, want ErrInvalidInput", err)
			}
		})
	}
	// The model still works after all that.
	out, err := p.Run(context.Background(), []engine.Tensor{ok, ok})
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Data.([]float32); !slices.Equal(got, []float32{2, 4, 6, 8}) {
		t.Errorf("x+x = %v", got)
	}
}

// Many goroutines share a small pool; each must get back exactly its own
// answer (corrupted results under concurrency are what DESIGN.md promises
// not to have). Run with -race.
func TestIntegrationPoolConcurrentRuns(t *testing.T) {
	onnxtest.Init(t)
	opts := onnx.DefaultOptions()
	opts.Sessions = 2
	p, err := onnx.NewPool(addModel(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if p.Size() != 2 {
		t.Fatalf("Size() = %d, want 2", p.Size())
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 25 {
				rows := int64(1 + (g+i)%3)
				x := make([]float32, 4*rows)
				y := make([]float32, 4*rows)
				for k := range x {
					x[k] = float32(1000*g + i)
					y[k] = float32(k)
				}
				out, err := p.Run(context.Background(), []engine.Tensor{engine.NewTensor([]int64{rows, 4}, x), engine.NewTensor([]int64{rows, 4}, y)})
				if err != nil {
					errs <- err
					return
				}
				z := out[0].Data.([]float32)
				for k := range z {
					if z[k] != x[k]+y[k] || len(z) != len(x) {
						errs <- fmt.Errorf("goroutine %d run %d: z[%d] = %v, want %v", g, i, k, z[k], x[k]+y[k])
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestIntegrationPoolLifecycle(t *testing.T) {
	onnxtest.Init(t)
	p, err := onnx.NewPool(addModel(t), oneSession())
	if err != nil {
		t.Fatal(err)
	}
	in := []engine.Tensor{engine.NewTensor([]int64{1, 4}, []float32{1, 2, 3, 4}), engine.NewTensor([]int64{1, 4}, []float32{1, 2, 3, 4})}

	held, err := p.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The only session is lent out: acquiring again waits until ctx ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Acquire on an exhausted pool with a cancelled ctx = %v, want context.Canceled", err)
	}
	if _, err := p.Run(ctx, in); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a cancelled ctx = %v, want context.Canceled", err)
	}

	// Close must not free the lent session: with a context that ends it
	// gives up and reports the session still in use.
	gone, stop := context.WithCancel(context.Background())
	stop()
	if err := p.Close(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with a lent session and an ended context = %v, want context.Canceled", err)
	}
	if _, err := p.Acquire(context.Background()); !errors.Is(err, engine.ErrPoolClosed) {
		t.Errorf("Acquire after Close began = %v, want engine.ErrPoolClosed", err)
	}
	// The holder can still finish its work on the lent session.
	if _, err := held.Run(context.Background(), in); err != nil {
		t.Errorf("Run on a lent session during Close: %v", err)
	}
	p.Release(held)
	if err := p.Close(context.Background()); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := held.Run(context.Background(), in); !errors.Is(err, onnx.ErrClosed) {
		t.Errorf("Run on a freed session = %v, want ErrClosed", err)
	}
	if _, err := p.Run(context.Background(), in); !errors.Is(err, engine.ErrPoolClosed) {
		t.Errorf("Run on a closed pool = %v, want engine.ErrPoolClosed", err)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

func TestIntegrationBadModel(t *testing.T) {
	onnxtest.Init(t)
	if _, err := onnx.NewPool([]byte("this is not an onnx model"), oneSession()); err == nil {
		t.Fatal("NewPool accepted garbage")
	}
	opts := oneSession()
	opts.IntraOpThreads = 0
	if _, err := onnx.NewPool(addModel(t), opts); err == nil {
		t.Fatal("NewPool accepted intra_op_threads=0")
	}
}

// onnxruntime_go v1.27 cannot return FP16 outputs it allocates; such models
// are refused at load time rather than failing every request.
func TestIntegrationFP16DynamicOutputRejected(t *testing.T) {
	onnxtest.Init(t)
	model, err := onnxtest.Identity(engine.FP16, []int64{-1, 3})
	if err != nil {
		t.Fatal(err)
	}
	if s, err := onnx.NewSession(model, onnx.DefaultOptions()); err == nil {
		s.Close()
		t.Fatal("NewSession accepted a model with a dynamic FP16 output")
	}
}

func TestIntegrationBytesWithNULRejected(t *testing.T) {
	onnxtest.Init(t)
	model, err := onnxtest.Identity(engine.BYTES, []int64{-1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := onnx.NewSession(model, onnx.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in := engine.Tensor{DType: engine.BYTES, Shape: []int64{1}, Data: [][]byte{{'a', 0, 'b'}}}
	if _, err := s.Run(context.Background(), []engine.Tensor{in}); !errors.Is(err, onnx.ErrInvalidInput) {
		t.Errorf("Run with a NUL inside a BYTES element = %v, want ErrInvalidInput", err)
	}
}

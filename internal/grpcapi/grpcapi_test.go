package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/ocr"
	"github.com/visionserve/visionserve/internal/oip"
	"github.com/visionserve/visionserve/internal/sched"
	pb "github.com/visionserve/visionserve/proto/inference"
)

func TestCodeFor(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("model m: %w", err) }
	for _, tc := range []struct {
		err  error
		want codes.Code
	}{
		{nil, codes.OK},
		{wrap(oip.ErrModelNotFound), codes.NotFound},
		{wrap(oip.ErrVersionNotFound), codes.NotFound},
		{wrap(ocr.ErrModelNotFound), codes.NotFound},
		{wrap(oip.ErrInvalidRequest), codes.InvalidArgument},
		{wrap(oip.ErrTooLarge), codes.InvalidArgument},
		{wrap(onnx.ErrInvalidInput), codes.InvalidArgument},
		{wrap(ocr.ErrBadOption), codes.InvalidArgument},
		{&imageio.Error{Kind: imageio.ErrUndecodable, Detail: "truncated"}, codes.InvalidArgument},
		{wrap(sched.ErrQueueFull), codes.ResourceExhausted},
		{batch.ErrQueueFull, codes.ResourceExhausted},
		{sched.ErrDraining, codes.Unavailable},
		{batch.ErrClosed, codes.Unavailable},
		{engine.ErrPoolClosed, codes.Unavailable},
		{wrap(context.DeadlineExceeded), codes.DeadlineExceeded},
		{wrap(context.Canceled), codes.Canceled},
		{errors.New("onnx: run: something broke"), codes.Internal},
	} {
		if got := codeFor(tc.err); got != tc.want {
			t.Errorf("codeFor(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// Internal errors do not leak their text; image errors give their detail.
	if st := status.Convert(statusFor(errors.New("secret path /etc/x"))); st.Message() != internalMessage {
		t.Errorf("internal error message %q", st.Message())
	}
	if st := status.Convert(statusFor(&imageio.Error{Kind: imageio.ErrUndecodable, Detail: "truncated PNG"})); st.Message() != "truncated PNG" {
		t.Errorf("image error message %q", st.Message())
	}
	// A status from gRPC itself passes through.
	if st := status.Convert(statusFor(status.Error(codes.ResourceExhausted, "message too large"))); st.Code() != codes.ResourceExhausted {
		t.Errorf("a gRPC status became %v", st.Code())
	}
}

func TestDecodeInferContents(t *testing.T) {
	in := func(dt string, shape []int64, c *pb.InferTensorContents) *pb.ModelInferRequest {
		return &pb.ModelInferRequest{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{{Name: "x", Datatype: dt, Shape: shape, Contents: c}}}
	}
	for _, tc := range []struct {
		req  *pb.ModelInferRequest
		want any
	}{
		{in("INT8", []int64{2}, &pb.InferTensorContents{IntContents: []int32{-128, 127}}), []int8{-128, 127}},
		{in("INT16", []int64{2}, &pb.InferTensorContents{IntContents: []int32{-32768, 32767}}), []int16{-32768, 32767}},
		{in("INT32", []int64{1}, &pb.InferTensorContents{IntContents: []int32{-5}}), []int32{-5}},
		{in("UINT8", []int64{1}, &pb.InferTensorContents{UintContents: []uint32{255}}), []uint8{255}},
		{in("UINT16", []int64{1}, &pb.InferTensorContents{UintContents: []uint32{65535}}), []uint16{65535}},
		{in("UINT32", []int64{1}, &pb.InferTensorContents{UintContents: []uint32{1 << 31}}), []uint32{1 << 31}},
		{in("UINT64", []int64{1}, &pb.InferTensorContents{Uint64Contents: []uint64{1 << 63}}), []uint64{1 << 63}},
		{in("INT64", []int64{1}, &pb.InferTensorContents{Int64Contents: []int64{-1 << 63}}), []int64{-1 << 63}},
		{in("FP64", []int64{1}, &pb.InferTensorContents{Fp64Contents: []float64{0.1}}), []float64{0.1}},
		{in("BOOL", []int64{2}, &pb.InferTensorContents{BoolContents: []bool{true, false}}), []bool{true, false}},
		{in("BYTES", []int64{1}, &pb.InferTensorContents{BytesContents: [][]byte{{0, 1}}}), [][]byte{{0, 1}}},
		{in("FP32", []int64{0, 3}, nil), []float32(nil)},
	} {
		got, err := decodeInfer(tc.req, oip.DefaultLimits())
		if err != nil {
			t.Errorf("%s: %v", tc.req.Inputs[0].Datatype, err)
			continue
		}
		if d := got.Inputs[0].Data; !reflect.DeepEqual(d, tc.want) {
			t.Errorf("%s: data %#v, want %#v", tc.req.Inputs[0].Datatype, d, tc.want)
		}
	}
	for name, req := range map[string]*pb.ModelInferRequest{
		"INT8 out of range":  in("INT8", []int64{1}, &pb.InferTensorContents{IntContents: []int32{128}}),
		"INT16 out of range": in("INT16", []int64{1}, &pb.InferTensorContents{IntContents: []int32{-32769}}),
		"count":              in("FP32", []int64{2}, &pb.InferTensorContents{Fp32Contents: []float32{1}}),
		"other field too":    in("FP32", []int64{1}, &pb.InferTensorContents{Fp32Contents: []float32{1}, Int64Contents: []int64{1}}),
		"FP16 typed":         in("FP16", []int64{1}, &pb.InferTensorContents{Fp32Contents: []float32{1}}),
		"negative dimension": in("FP32", []int64{-1}, nil),
		"no inputs":          {ModelName: "m"},
		"empty parameter":    {ModelName: "m", Parameters: map[string]*pb.InferParameter{"k": {}}, Inputs: in("FP32", []int64{0}, nil).Inputs},
	} {
		if _, err := decodeInfer(req, oip.DefaultLimits()); !errors.Is(err, oip.ErrInvalidRequest) {
			t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
		}
	}
	huge := in("FP32", []int64{1 << 20, 1 << 20}, nil)
	if _, err := decodeInfer(huge, oip.DefaultLimits()); !errors.Is(err, oip.ErrTooLarge) {
		t.Errorf("2^40 elements: %v", err)
	}
}

func FuzzDecodeInfer(f *testing.F) {
	seed := func(m *pb.ModelInferRequest) {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(&pb.ModelInferRequest{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "x", Datatype: "FP32", Shape: []int64{1, 2}, Contents: &pb.InferTensorContents{Fp32Contents: []float32{1, 2}}}}})
	seed(&pb.ModelInferRequest{ModelName: "m", Inputs: []*pb.ModelInferRequest_InferInputTensor{
		{Name: "s", Datatype: "BYTES", Shape: []int64{1}}}, RawInputContents: [][]byte{{1, 0, 0, 0, 'a'}}})
	lim := oip.Limits{MaxTensors: 8, MaxElements: 1 << 16}
	f.Fuzz(func(t *testing.T, data []byte) {
		var req pb.ModelInferRequest
		if proto.Unmarshal(data, &req) != nil {
			return
		}
		got, err := decodeInfer(&req, lim)
		if err != nil {
			if !errors.Is(err, oip.ErrInvalidRequest) && !errors.Is(err, oip.ErrTooLarge) {
				t.Fatalf("error %v wraps neither ErrInvalidRequest nor ErrTooLarge", err)
			}
			return
		}
		for _, in := range got.Inputs {
			if err := in.Validate(); err != nil {
				t.Fatalf("decoded an invalid tensor: %v", err)
			}
		}
	})
}

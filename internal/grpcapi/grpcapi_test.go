package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/batch"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/face"
	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/gallery"
	"github.com/visionserve/visionserve/internal/imageio"
	"github.com/visionserve/visionserve/internal/modelrepo"
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
		{wrap(modelrepo.ErrVersionNotFound), codes.NotFound},
		// Not ready yet: retry, although the OCR core also calls it "version not found".
		{fmt.Errorf("%w (%w)", modelrepo.ErrNoReadyVersion, ocr.ErrVersionNotFound), codes.Unavailable},
		{wrap(oip.ErrInvalidRequest), codes.InvalidArgument},
		{wrap(oip.ErrTooLarge), codes.ResourceExhausted},
		{wrap(onnx.ErrInvalidInput), codes.InvalidArgument},
		{wrap(ocr.ErrBadOption), codes.InvalidArgument},
		{&imageio.Error{Kind: imageio.ErrUndecodable, Detail: "truncated"}, codes.InvalidArgument},
		{&imageio.Error{Kind: imageio.ErrUnusable, Detail: "1x1"}, codes.InvalidArgument},
		{&imageio.Error{Kind: imageio.ErrTooLarge, Detail: "big"}, codes.ResourceExhausted},
		{&imageio.Error{Kind: imageio.ErrUnsupported, Detail: "a PDF"}, codes.InvalidArgument},
		{wrap(face.ErrDisabled), codes.Unimplemented},
		{wrap(face.ErrNoFace), codes.InvalidArgument},
		{wrap(face.ErrBadOption), codes.InvalidArgument},
		{wrap(gallery.ErrInvalidName), codes.InvalidArgument},
		{gallery.ErrGalleryNotFound, codes.NotFound},
		{gallery.ErrSubjectNotFound, codes.NotFound},
		{wrap(gallery.ErrLimit), codes.FailedPrecondition},
		{wrap(gallery.ErrUnavailable), codes.Unavailable},
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
	message := func(err error) string { st, _ := statusFor(err); return st.Message() }
	// Internal errors do not leak their text; image errors give their detail.
	if m := message(errors.New("secret path /etc/x")); m != internalMessage {
		t.Errorf("internal error message %q", m)
	}
	if m := message(&imageio.Error{Kind: imageio.ErrUndecodable, Detail: "truncated PNG"}); m != "truncated PNG" {
		t.Errorf("image error message %q", m)
	}
	if m := message(gallery.ErrGalleryNotFound); !strings.Contains(m, "CreateGallery") {
		t.Errorf("gallery-not-found message %q names no remedy", m)
	}
	// A status from gRPC itself passes through.
	if st, _ := statusFor(status.Error(codes.ResourceExhausted, "message too large")); st.Code() != codes.ResourceExhausted {
		t.Errorf("a gRPC status became %v", st.Code())
	}
	// Failures worth retrying carry RetryInfo; the others none.
	for err, want := range map[error]bool{sched.ErrQueueFull: true, sched.ErrDraining: true, gallery.ErrUnavailable: true,
		imageio.ErrTooLarge: false, gallery.ErrLimit: false} {
		st, retry := statusFor(err)
		var info *errdetails.RetryInfo
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				info = ri
			}
		}
		if got := info != nil && retry > 0 && info.GetRetryDelay().AsDuration() == retry; got != want {
			t.Errorf("%v: RetryInfo %v (retry %v), want it: %v", err, info, retry, want)
		}
	}
}

// Every HTTP status maps to the gRPC code that is its counterpart, for
// every failure the core declares: the two transports classify alike.
func TestCodesFollowHTTPStatuses(t *testing.T) {
	counterpart := map[int][]codes.Code{
		400: {codes.InvalidArgument}, 404: {codes.NotFound}, 409: {codes.FailedPrecondition},
		413: {codes.ResourceExhausted}, 415: {codes.InvalidArgument}, 422: {codes.InvalidArgument, codes.FailedPrecondition},
		429: {codes.ResourceExhausted}, 499: {codes.Canceled}, 501: {codes.Unimplemented}, 503: {codes.Unavailable},
		504: {codes.DeadlineExceeded},
	}
	for _, err := range []error{
		modelrepo.ErrModelNotFound, modelrepo.ErrNoReadyVersion, modelrepo.ErrNoRepository, modelrepo.ErrBadWeights,
		modelrepo.ErrClosed, &modelrepo.Error{Reason: "digest_mismatch"},
		imageio.ErrUnsupported, imageio.ErrUndecodable, imageio.ErrTooLarge, imageio.ErrUnusable, imageio.ErrDecodeTimeout,
		ocr.ErrBadOption, ocr.ErrModelNotFound, ocr.ErrVersionNotFound, oip.ErrModelNotFound, oip.ErrVersionNotFound,
		oip.ErrInvalidRequest, oip.ErrTooLarge, onnx.ErrInvalidInput,
		face.ErrBadOption, face.ErrNoFace, face.ErrDisabled, gallery.ErrInvalidName, gallery.ErrGalleryNotFound,
		gallery.ErrSubjectNotFound, gallery.ErrLimit, gallery.ErrUnavailable, gallery.ErrClosed,
		sched.ErrQueueFull, sched.ErrDraining, engine.ErrPoolClosed, context.DeadlineExceeded, context.Canceled,
	} {
		c, ok := failure.Classify(err)
		if !ok {
			t.Errorf("%v is not classified", err)
			continue
		}
		if !slices.Contains(counterpart[c.Status], c.Code) {
			t.Errorf("%v: HTTP %d but gRPC %v", err, c.Status, c.Code)
		}
		if got := codeFor(err); got != c.Code {
			t.Errorf("%v: codeFor %v, class %v", err, got, c.Code)
		}
		if c.Detail == "" || strings.Contains(c.Detail, "\n") {
			t.Errorf("%v: detail %q is not one line", err, c.Detail)
		}
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
		"zero dimension":     in("FP32", []int64{2, 0}, nil),
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

// codeFor is statusFor's code.
func codeFor(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	st, _ := statusFor(err)
	return st.Code()
}

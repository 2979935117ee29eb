package grpcapi

import (
	"context"
	"fmt"
	"math"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/failure"
	"github.com/visionserve/visionserve/internal/oip"
	pb "github.com/visionserve/visionserve/proto/inference"
)

// inference implements inference.GRPCInferenceService on oip.Service.
// Responses always carry tensor data in raw_output_contents, as Triton
// does: it is the only form that holds every datatype (FP16 has no typed
// field) and the cheapest to produce and to read.
type inference struct {
	pb.UnimplementedGRPCInferenceServiceServer
	oip *oip.Service
}

func (s *inference) ServerLive(context.Context, *pb.ServerLiveRequest) (*pb.ServerLiveResponse, error) {
	return &pb.ServerLiveResponse{Live: true}, nil
}

func (s *inference) ServerReady(context.Context, *pb.ServerReadyRequest) (*pb.ServerReadyResponse, error) {
	return &pb.ServerReadyResponse{Ready: s.oip.Ready() == nil}, nil
}

// ModelReady answers ready: false, not an error, for a model or version
// that is not served or not ready, as Triton does: the protocol's REST
// twin says "not ready" with any 4xx, so its clients read both answers as
// false, and the gRPC clients (tritonclient's is_model_ready) raise on an
// error status.
func (s *inference) ModelReady(_ context.Context, req *pb.ModelReadyRequest) (*pb.ModelReadyResponse, error) {
	ready, err := s.oip.ModelReady(req.GetName(), req.GetVersion())
	if err != nil {
		if c, _ := failure.Classify(err); c.Kind != "model-not-found" && c.Kind != "model-not-ready" {
			return nil, err
		}
	}
	return &pb.ModelReadyResponse{Ready: ready}, nil
}

func (s *inference) ServerMetadata(context.Context, *pb.ServerMetadataRequest) (*pb.ServerMetadataResponse, error) {
	md := s.oip.ServerMetadata()
	return &pb.ServerMetadataResponse{Name: md.Name, Version: md.Version, Extensions: md.Extensions}, nil
}

func (s *inference) ModelMetadata(_ context.Context, req *pb.ModelMetadataRequest) (*pb.ModelMetadataResponse, error) {
	md, err := s.oip.ModelMetadata(req.GetName(), req.GetVersion())
	if err != nil {
		return nil, err
	}
	tensors := func(infos []engine.TensorInfo) []*pb.ModelMetadataResponse_TensorMetadata {
		out := make([]*pb.ModelMetadataResponse_TensorMetadata, len(infos))
		for i, t := range infos {
			out[i] = &pb.ModelMetadataResponse_TensorMetadata{Name: t.Name, Datatype: string(t.DType), Shape: t.Shape}
		}
		return out
	}
	return &pb.ModelMetadataResponse{Name: md.Name, Versions: md.Versions, Platform: md.Platform,
		Inputs: tensors(md.Inputs), Outputs: tensors(md.Outputs)}, nil
}

func (s *inference) ModelInfer(ctx context.Context, req *pb.ModelInferRequest) (*pb.ModelInferResponse, error) {
	// The message is within its bound already (boundedCodec).
	in, err := decodeInfer(req, s.oip.Limits())
	if err != nil {
		return nil, err
	}
	resp, err := s.oip.Infer(ctx, in)
	if err != nil {
		return nil, err
	}
	return encodeInfer(resp)
}

// decodeInfer turns a ModelInferRequest into the core's request, checking
// each tensor's data against its datatype and shape and the limits.
func decodeInfer(req *pb.ModelInferRequest, limits oip.Limits) (*oip.InferRequest, error) {
	limits = limits.WithDefaults()
	if n := len(req.GetInputs()) + len(req.GetOutputs()); n > limits.MaxTensors {
		return nil, fmt.Errorf("%w: %d tensors in one request; the limit is %d", oip.ErrTooLarge, n, limits.MaxTensors)
	}
	if len(req.GetInputs()) == 0 {
		return nil, fmt.Errorf("%w: the request has no inputs", oip.ErrInvalidRequest)
	}
	raw := req.GetRawInputContents()
	if len(raw) > 0 && len(raw) != len(req.GetInputs()) {
		return nil, fmt.Errorf("%w: %d raw_input_contents for %d inputs; give one per input or none", oip.ErrInvalidRequest, len(raw), len(req.GetInputs()))
	}
	params, err := decodeParams(req.GetParameters())
	if err != nil {
		return nil, err
	}
	out := &oip.InferRequest{ModelName: req.GetModelName(), ModelVersion: req.GetModelVersion(), ID: req.GetId(),
		Parameters: params, Inputs: make([]oip.Input, len(req.GetInputs()))}
	if out.ModelName == "" {
		return nil, fmt.Errorf("%w: model_name is empty", oip.ErrInvalidRequest)
	}
	budget := limits.NewBudget()
	for i, t := range req.GetInputs() {
		dt, err := oip.ParseDType(t.GetDatatype())
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", t.GetName(), err)
		}
		n, err := budget.Take(t.GetName(), t.GetShape())
		if err != nil {
			return nil, err
		}
		var tensor engine.Tensor
		if len(raw) > 0 {
			if t.GetContents() != nil && contentsLen(t.GetContents()) > 0 {
				return nil, fmt.Errorf("%w: input %q has contents while raw_input_contents is used", oip.ErrInvalidRequest, t.GetName())
			}
			tensor, err = oip.DecodeRaw(t.GetName(), dt, t.GetShape(), n, raw[i])
		} else {
			tensor, err = fromContents(t.GetName(), dt, t.GetShape(), n, t.GetContents())
		}
		if err != nil {
			return nil, err
		}
		p, err := decodeParams(t.GetParameters())
		if err != nil {
			return nil, err
		}
		out.Inputs[i] = oip.Input{Name: t.GetName(), Tensor: tensor, Parameters: p}
	}
	for _, o := range req.GetOutputs() {
		p, err := decodeParams(o.GetParameters())
		if err != nil {
			return nil, err
		}
		out.Outputs = append(out.Outputs, oip.RequestedOutput{Name: o.GetName(), Parameters: p})
	}
	return out, nil
}

func decodeParams(in map[string]*pb.InferParameter) (oip.Parameters, error) {
	if len(in) == 0 {
		return nil, nil
	}
	p := make(oip.Parameters, len(in))
	for k, v := range in {
		switch c := v.GetParameterChoice().(type) {
		case *pb.InferParameter_BoolParam:
			p[k] = c.BoolParam
		case *pb.InferParameter_Int64Param:
			p[k] = c.Int64Param
		case *pb.InferParameter_StringParam:
			p[k] = c.StringParam
		default:
			return nil, fmt.Errorf("%w: parameter %q has no value", oip.ErrInvalidRequest, k)
		}
	}
	return p, nil
}

func contentsLen(c *pb.InferTensorContents) int {
	return len(c.GetBoolContents()) + len(c.GetIntContents()) + len(c.GetInt64Contents()) + len(c.GetUintContents()) +
		len(c.GetUint64Contents()) + len(c.GetFp32Contents()) + len(c.GetFp64Contents()) + len(c.GetBytesContents())
}

// fromContents reads typed contents: the field for dt must hold exactly n
// elements and every other field must be empty. The tensor shares the
// message's slices where the types agree (the message is not used after).
func fromContents(name string, dt engine.DType, shape []int64, n int64, c *pb.InferTensorContents) (engine.Tensor, error) {
	t := engine.Tensor{DType: dt, Shape: shape}
	bad := func(format string, args ...any) (engine.Tensor, error) {
		return t, fmt.Errorf("%w: input %q (%s): %s", oip.ErrInvalidRequest, name, dt, fmt.Sprintf(format, args...))
	}
	var have int
	switch dt {
	case engine.BOOL:
		have = len(c.GetBoolContents())
		t.Data = c.GetBoolContents()
	case engine.INT8, engine.INT16, engine.INT32:
		v := c.GetIntContents()
		have = len(v)
		if int64(have) == n {
			var err error
			if t.Data, err = narrowInts(dt, v); err != nil {
				return bad("%v", err)
			}
		}
	case engine.INT64:
		have = len(c.GetInt64Contents())
		t.Data = c.GetInt64Contents()
	case engine.UINT8, engine.UINT16, engine.UINT32:
		v := c.GetUintContents()
		have = len(v)
		if int64(have) == n {
			var err error
			if t.Data, err = narrowUints(dt, v); err != nil {
				return bad("%v", err)
			}
		}
	case engine.UINT64:
		have = len(c.GetUint64Contents())
		t.Data = c.GetUint64Contents()
	case engine.FP32:
		have = len(c.GetFp32Contents())
		t.Data = c.GetFp32Contents()
	case engine.FP64:
		have = len(c.GetFp64Contents())
		t.Data = c.GetFp64Contents()
	case engine.BYTES:
		have = len(c.GetBytesContents())
		t.Data = c.GetBytesContents()
	case engine.FP16:
		return bad("FP16 has no typed contents field; send it in raw_input_contents")
	default:
		return bad("unsupported datatype")
	}
	if int64(have) != n {
		return bad("contents hold %d elements; shape %v needs %d", have, shape, n)
	}
	if other := contentsLen(c) - have; other != 0 {
		return bad("%d elements in contents fields of other datatypes", other)
	}
	return t, nil
}

func narrowInts(dt engine.DType, v []int32) (any, error) {
	switch dt {
	case engine.INT8:
		out := make([]int8, len(v))
		for i, x := range v {
			if x < math.MinInt8 || x > math.MaxInt8 {
				return nil, fmt.Errorf("element %d (%d) is out of the INT8 range", i, x)
			}
			out[i] = int8(x)
		}
		return out, nil
	case engine.INT16:
		out := make([]int16, len(v))
		for i, x := range v {
			if x < math.MinInt16 || x > math.MaxInt16 {
				return nil, fmt.Errorf("element %d (%d) is out of the INT16 range", i, x)
			}
			out[i] = int16(x)
		}
		return out, nil
	}
	return v, nil
}

func narrowUints(dt engine.DType, v []uint32) (any, error) {
	switch dt {
	case engine.UINT8:
		out := make([]uint8, len(v))
		for i, x := range v {
			if x > math.MaxUint8 {
				return nil, fmt.Errorf("element %d (%d) is out of the UINT8 range", i, x)
			}
			out[i] = uint8(x)
		}
		return out, nil
	case engine.UINT16:
		out := make([]uint16, len(v))
		for i, x := range v {
			if x > math.MaxUint16 {
				return nil, fmt.Errorf("element %d (%d) is out of the UINT16 range", i, x)
			}
			out[i] = uint16(x)
		}
		return out, nil
	}
	return v, nil
}

func encodeInfer(resp *oip.InferResponse) (*pb.ModelInferResponse, error) {
	out := &pb.ModelInferResponse{ModelName: resp.ModelName, ModelVersion: resp.ModelVersion, Id: resp.ID,
		Outputs: make([]*pb.ModelInferResponse_InferOutputTensor, len(resp.Outputs)), RawOutputContents: make([][]byte, len(resp.Outputs))}
	for i, o := range resp.Outputs {
		raw, err := oip.AppendRaw(make([]byte, 0, oip.RawSize(o.Tensor)), o.Tensor)
		if err != nil {
			return nil, fmt.Errorf("output %q: %w", o.Name, err)
		}
		out.Outputs[i] = &pb.ModelInferResponse_InferOutputTensor{Name: o.Name, Datatype: string(o.DType), Shape: o.Shape}
		out.RawOutputContents[i] = raw
	}
	return out, nil
}

package oip

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/visionserve/visionserve/internal/engine"
)

// The REST binary tensor extension's names.
const (
	// HeaderInferenceHeaderLength carries the length of the JSON part of a
	// body whose binary tensor data follows it.
	HeaderInferenceHeaderLength = "Inference-Header-Content-Length"
	// ParamBinaryDataSize (on an input or output) is the byte size of its
	// binary data in the body.
	ParamBinaryDataSize = "binary_data_size"
	// ParamBinaryData (on a requested output) asks for it in binary.
	ParamBinaryData = "binary_data"
	// ParamBinaryDataOutput (on the request) asks for every output in binary.
	ParamBinaryDataOutput = "binary_data_output"
	// ParamContentType "base64" on a BYTES tensor says its JSON strings
	// are base64 (binary data, such as an image, cannot be a JSON string).
	ParamContentType = "content_type"
)

type jsonRequest struct {
	ID         string          `json:"id"`
	Parameters json.RawMessage `json:"parameters"`
	Inputs     []jsonInput     `json:"inputs"`
	Outputs    []jsonOutput    `json:"outputs"`
}

type jsonInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	DataType   string          `json:"datatype"`
	Parameters json.RawMessage `json:"parameters"`
	Data       json.RawMessage `json:"data"`
}

type jsonOutput struct {
	Name       string          `json:"name"`
	Parameters json.RawMessage `json:"parameters"`
}

// DecodeRequest decodes the body of POST /v2/models/{m}/infer. headerLen is
// the Inference-Header-Content-Length header's value, or -1 without one:
// then the whole body is JSON; otherwise the JSON is body[:headerLen] and
// the binary data of the inputs that declare binary_data_size follows, in
// input order. Tensor data is checked against each input's datatype and
// shape and against limits before it is allocated. Model name and version
// come from the URL and are left for the caller to set.
func DecodeRequest(body []byte, headerLen int, limits Limits) (*InferRequest, error) {
	limits = limits.WithDefaults()
	js, bin := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen > len(body) {
			return nil, invalidf("%s is %d but the body has %d bytes", HeaderInferenceHeaderLength, headerLen, len(body))
		}
		js, bin = body[:headerLen], body[headerLen:]
	}
	var jr jsonRequest
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&jr); err != nil {
		return nil, invalidf("request body is not a valid inference request: %v", err)
	}
	if dec.More() {
		return nil, invalidf("request body has data after the JSON object")
	}
	if n := len(jr.Inputs) + len(jr.Outputs); n > limits.MaxTensors {
		return nil, tooLargef("%d tensors in one request; the limit is %d", n, limits.MaxTensors)
	}
	if len(jr.Inputs) == 0 {
		return nil, invalidf("the request has no inputs")
	}
	req := &InferRequest{ID: jr.ID, Inputs: make([]Input, len(jr.Inputs))}
	var err error
	if req.Parameters, err = decodeParams("request", jr.Parameters); err != nil {
		return nil, err
	}
	budget := limits.NewBudget()
	for i, in := range jr.Inputs {
		if in.Name == "" {
			return nil, invalidf("input %d has no name", i)
		}
		var t Input
		if t, bin, err = decodeInput(in, bin, budget); err != nil {
			return nil, err
		}
		req.Inputs[i] = t
	}
	if len(bin) > 0 {
		return nil, invalidf("%d bytes of binary data follow the JSON that no input claims with %s", len(bin), ParamBinaryDataSize)
	}
	for _, o := range jr.Outputs {
		if o.Name == "" {
			return nil, invalidf("a requested output has no name")
		}
		p, err := decodeParams("output "+strconv.Quote(o.Name), o.Parameters)
		if err != nil {
			return nil, err
		}
		req.Outputs = append(req.Outputs, RequestedOutput{Name: o.Name, Parameters: p})
	}
	return req, nil
}

func decodeInput(in jsonInput, bin []byte, budget *Budget) (Input, []byte, error) {
	dt, err := ParseDType(in.DataType)
	if err != nil {
		return Input{}, bin, fmt.Errorf("input %q: %w", in.Name, err)
	}
	if in.Shape == nil {
		return Input{}, bin, invalidf("input %q has no shape", in.Name)
	}
	params, err := decodeParams("input "+strconv.Quote(in.Name), in.Parameters)
	if err != nil {
		return Input{}, bin, err
	}
	n, err := budget.Take(in.Name, in.Shape)
	if err != nil {
		return Input{}, bin, err
	}
	size, hasBinary, err := params.Int(ParamBinaryDataSize)
	if err != nil {
		return Input{}, bin, err
	}
	var t engine.Tensor
	switch {
	case hasBinary && in.Data != nil:
		return Input{}, bin, invalidf("input %q has both data and %s", in.Name, ParamBinaryDataSize)
	case hasBinary:
		if size < 0 || size > int64(len(bin)) {
			return Input{}, bin, invalidf("input %q: %s is %d but %d bytes of binary data remain", in.Name, ParamBinaryDataSize, size, len(bin))
		}
		if t, err = DecodeRaw(in.Name, dt, in.Shape, n, bin[:size]); err != nil {
			return Input{}, bin, err
		}
		bin = bin[size:]
	case in.Data == nil:
		return Input{}, bin, invalidf("input %q has no data", in.Name)
	default:
		ct, _, err := params.String(ParamContentType)
		if err != nil {
			return Input{}, bin, err
		}
		if ct != "" && ct != "base64" && ct != "str" {
			return Input{}, bin, invalidf("input %q: %s %q; use base64 or str", in.Name, ParamContentType, ct)
		}
		if t, err = decodeData(in.Name, dt, in.Shape, n, in.Data, ct == "base64"); err != nil {
			return Input{}, bin, err
		}
	}
	return Input{Name: in.Name, Tensor: t, Parameters: params}, bin, nil
}

func decodeParams(where string, raw json.RawMessage) (Parameters, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, invalidf("%s parameters must be a JSON object: %v", where, err)
	}
	p := make(Parameters, len(m))
	for k, v := range m {
		switch x := v.(type) {
		case bool, string:
			p[k] = x
		case json.Number:
			if i, err := x.Int64(); err == nil {
				p[k] = i
			} else if f, err := x.Float64(); err == nil {
				p[k] = f
			} else {
				return nil, invalidf("%s parameter %q: %v", where, k, err)
			}
		default:
			return nil, invalidf("%s parameter %q must be a boolean, number or string", where, k)
		}
	}
	return p, nil
}

// decodeData reads JSON tensor data: a flat array of n elements in
// row-major order, or arrays nested exactly as shape; a bare value is
// accepted for a one-element tensor.
func decodeData(name string, dt engine.DType, shape []int64, n int64, raw json.RawMessage, b64 bool) (engine.Tensor, error) {
	// Every element needs at least one character and a separator, which
	// bounds what is allocated below by the body actually received.
	if n > 0 && int64(len(raw)) < n {
		return engine.Tensor{}, invalidf("input %q: data is %d bytes, too short for the %d elements of shape %v", name, len(raw), n, shape)
	}
	s, err := newSink(dt, n, b64)
	if err != nil {
		return engine.Tensor{}, invalidf("input %q: %v", name, err)
	}
	r := dataReader{b: raw, shape: shape, n: n, put: s.put}
	if err := r.read(); err != nil {
		return engine.Tensor{}, invalidf("input %q (%s%s): %v", name, dt, shapeString(shape), err)
	}
	return engine.Tensor{DType: dt, Shape: shape, Data: s.data}, nil
}

// sink stores scalar tokens into typed data.
type sink struct {
	data any
	put  func(k int64, tok []byte, isString bool) error
}

func newSink(dt engine.DType, n int64, b64 bool) (sink, error) {
	switch dt {
	case engine.FP32:
		d := make([]float32, n)
		return sink{d, func(k int64, tok []byte, str bool) error {
			f, err := parseFloat(tok, str, 32)
			d[k] = float32(f)
			return err
		}}, nil
	case engine.FP64:
		d := make([]float64, n)
		return sink{d, func(k int64, tok []byte, str bool) error {
			f, err := parseFloat(tok, str, 64)
			d[k] = f
			return err
		}}, nil
	case engine.FP16:
		d := make([]uint16, n)
		return sink{d, func(k int64, tok []byte, str bool) error {
			f, err := parseFloat(tok, str, 64)
			if err != nil {
				return err
			}
			d[k] = HalfFromFloat64(f)
			if d[k]&0x7fff == 0x7c00 && !math.IsInf(f, 0) {
				return fmt.Errorf("%s is outside the FP16 range", tok)
			}
			return nil
		}}, nil
	case engine.INT8:
		return intSink[int8](n, 8), nil
	case engine.INT16:
		return intSink[int16](n, 16), nil
	case engine.INT32:
		return intSink[int32](n, 32), nil
	case engine.INT64:
		return intSink[int64](n, 64), nil
	case engine.UINT8:
		return uintSink[uint8](n, 8), nil
	case engine.UINT16:
		return uintSink[uint16](n, 16), nil
	case engine.UINT32:
		return uintSink[uint32](n, 32), nil
	case engine.UINT64:
		return uintSink[uint64](n, 64), nil
	case engine.BOOL:
		d := make([]bool, n)
		return sink{d, func(k int64, tok []byte, str bool) error {
			switch {
			case !str && string(tok) == "true":
				d[k] = true
			case !str && string(tok) == "false":
			default:
				return fmt.Errorf("%s is not a boolean", tok)
			}
			return nil
		}}, nil
	case engine.BYTES:
		d := make([][]byte, n)
		return sink{d, func(k int64, tok []byte, str bool) error {
			if !str {
				return fmt.Errorf("%s is not a string", tok)
			}
			b, err := unquote(tok)
			if err != nil {
				return err
			}
			if b64 {
				if b, err = base64.StdEncoding.DecodeString(string(b)); err != nil {
					return fmt.Errorf("element %d is not base64: %v", k, err)
				}
			}
			d[k] = b
			return nil
		}}, nil
	}
	return sink{}, fmt.Errorf("unsupported datatype %s", dt)
}

func intSink[T int8 | int16 | int32 | int64](n int64, bits int) sink {
	d := make([]T, n)
	return sink{d, func(k int64, tok []byte, str bool) error {
		if str {
			return fmt.Errorf("%s is not a number", tok)
		}
		v, err := strconv.ParseInt(string(tok), 10, bits)
		if err != nil {
			return fmt.Errorf("%s is not an INT%d", tok, bits)
		}
		d[k] = T(v)
		return nil
	}}
}

func uintSink[T uint8 | uint16 | uint32 | uint64](n int64, bits int) sink {
	d := make([]T, n)
	return sink{d, func(k int64, tok []byte, str bool) error {
		if str {
			return fmt.Errorf("%s is not a number", tok)
		}
		v, err := strconv.ParseUint(string(tok), 10, bits)
		if err != nil {
			return fmt.Errorf("%s is not a UINT%d", tok, bits)
		}
		d[k] = T(v)
		return nil
	}}
}

// parseFloat reads a JSON number, or one of the strings "NaN", "Infinity"
// and "-Infinity" that stand for values JSON numbers cannot write (the
// protobuf JSON mapping's spelling).
func parseFloat(tok []byte, str bool, bits int) (float64, error) {
	if str {
		switch string(tok) {
		case `"NaN"`:
			return math.NaN(), nil
		case `"Infinity"`:
			return math.Inf(1), nil
		case `"-Infinity"`:
			return math.Inf(-1), nil
		}
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	f, err := strconv.ParseFloat(string(tok), bits)
	if err != nil {
		if errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%s is outside the FP%d range", tok, bits)
		}
		return 0, fmt.Errorf("%s is not a number", tok)
	}
	return f, nil
}

func unquote(tok []byte) ([]byte, error) {
	inner := tok[1 : len(tok)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return bytes.Clone(inner), nil
	}
	var s string
	if err := json.Unmarshal(tok, &s); err != nil {
		return nil, err
	}
	return []byte(s), nil
}

// dataReader walks JSON tensor data without building a tree: each scalar
// goes straight into its typed slot, and the structure is checked against
// the shape on the way.
type dataReader struct {
	b     []byte
	i     int
	shape []int64
	n     int64
	put   func(k int64, tok []byte, isString bool) error

	count       int64 // scalars stored
	scalarDepth int   // array depth of the scalars, 0 until one is seen
	maxDepth    int   // deepest array opened
}

func (r *dataReader) read() error {
	r.ws()
	if r.i >= len(r.b) {
		return errors.New("data is empty")
	}
	var err error
	if r.b[r.i] == '[' {
		err = r.array(1)
	} else {
		err = r.scalar(0)
	}
	if err != nil {
		return err
	}
	if r.ws(); r.i != len(r.b) {
		return fmt.Errorf("unexpected %q after the data at offset %d", r.b[r.i], r.i)
	}
	if r.maxDepth > 1 && r.scalarDepth != 0 && r.scalarDepth != len(r.shape) {
		return fmt.Errorf("values are nested %d deep; a nested array must follow the shape's %d dimensions", r.scalarDepth, len(r.shape))
	}
	if r.count != r.n {
		return fmt.Errorf("data has %d elements; the shape needs %d", r.count, r.n)
	}
	return nil
}

func (r *dataReader) array(depth int) error {
	if depth > MaxRank || depth > len(r.shape) && depth > 1 {
		return fmt.Errorf("data is nested %d deep; the shape has %d dimensions", depth, len(r.shape))
	}
	if r.scalarDepth != 0 && depth > r.scalarDepth {
		return fmt.Errorf("data mixes values and arrays at depth %d", r.scalarDepth)
	}
	r.maxDepth = max(r.maxDepth, depth)
	r.i++ // the '['
	var count int64
	if r.ws(); r.peek() == ']' {
		r.i++
		return r.closed(depth, 0)
	}
	for {
		r.ws()
		var err error
		if r.peek() == '[' {
			err = r.array(depth + 1)
		} else {
			err = r.scalar(depth)
		}
		if err != nil {
			return err
		}
		count++
		r.ws()
		if r.i >= len(r.b) {
			return errors.New("data ends inside an array")
		}
		switch c := r.b[r.i]; c {
		case ',':
			r.i++
		case ']':
			r.i++
			return r.closed(depth, count)
		default:
			return fmt.Errorf("unexpected %q at offset %d", c, r.i)
		}
	}
}

// closed checks an array's length once it ends: in nested data every array
// at depth d has shape[d-1] elements; flat data is checked as a whole.
func (r *dataReader) closed(depth int, count int64) error {
	if r.maxDepth <= 1 {
		return nil
	}
	if depth > len(r.shape) {
		return fmt.Errorf("data is nested %d deep; the shape has %d dimensions", depth, len(r.shape))
	}
	if want := r.shape[depth-1]; count != want {
		return fmt.Errorf("an array at depth %d has %d elements; dimension %d of the shape is %d", depth, count, depth-1, want)
	}
	return nil
}

func (r *dataReader) scalar(depth int) error {
	switch {
	case r.scalarDepth == 0:
		r.scalarDepth = depth
	case r.scalarDepth != depth:
		return fmt.Errorf("data mixes values at depths %d and %d", r.scalarDepth, depth)
	}
	if depth < r.maxDepth {
		return fmt.Errorf("data mixes values and arrays at depth %d", depth)
	}
	if r.count >= r.n {
		return fmt.Errorf("data has more than the %d elements the shape holds", r.n)
	}
	start := r.i
	tok, isString, err := r.token()
	if err != nil {
		return err
	}
	if err := r.put(r.count, tok, isString); err != nil {
		return fmt.Errorf("element %d (offset %d): %v", r.count, start, err)
	}
	r.count++
	return nil
}

func (r *dataReader) token() (tok []byte, isString bool, err error) {
	start := r.i
	switch c := r.peek(); {
	case c == '"':
		for j := r.i + 1; j < len(r.b); j++ {
			switch r.b[j] {
			case '\\':
				j++
			case '"':
				r.i = j + 1
				return r.b[start:r.i], true, nil
			default:
				if r.b[j] < 0x20 {
					return nil, false, fmt.Errorf("control character in a string at offset %d", j)
				}
			}
		}
		return nil, false, errors.New("data ends inside a string")
	case c == 't' || c == 'f' || c == 'n':
		for r.i < len(r.b) && 'a' <= r.b[r.i] && r.b[r.i] <= 'z' {
			r.i++
		}
		switch s := string(r.b[start:r.i]); s {
		case "true", "false":
			return r.b[start:r.i], false, nil
		case "null":
			return nil, false, errors.New("null is not a tensor element")
		}
	case c == '-' || '0' <= c && c <= '9':
		for r.i < len(r.b) && isNumberByte(r.b[r.i]) {
			r.i++
		}
		return r.b[start:r.i], false, nil
	}
	if start >= len(r.b) {
		return nil, false, errors.New("data ends where a value was expected")
	}
	return nil, false, fmt.Errorf("unexpected %q at offset %d", r.b[start], start)
}

func isNumberByte(c byte) bool {
	return '0' <= c && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

func (r *dataReader) peek() byte {
	if r.i < len(r.b) {
		return r.b[r.i]
	}
	return 0
}

func (r *dataReader) ws() {
	for r.i < len(r.b) {
		switch r.b[r.i] {
		case ' ', '\t', '\n', '\r':
			r.i++
		default:
			return
		}
	}
}

type jsonResponse struct {
	ModelName    string          `json:"model_name"`
	ModelVersion string          `json:"model_version"`
	ID           string          `json:"id"`
	Parameters   json.RawMessage `json:"parameters"`
	Outputs      []jsonInput     `json:"outputs"`
}

// DecodeResponse decodes a REST inference response (what EncodeResponse
// writes), for clients and tests; headerLen is the response's
// Inference-Header-Content-Length, or -1. Outputs are checked as request
// inputs are, against limits.
func DecodeResponse(body []byte, headerLen int, limits Limits) (*InferResponse, error) {
	limits = limits.WithDefaults()
	js, bin := body, []byte(nil)
	if headerLen >= 0 {
		if headerLen > len(body) {
			return nil, invalidf("%s is %d but the body has %d bytes", HeaderInferenceHeaderLength, headerLen, len(body))
		}
		js, bin = body[:headerLen], body[headerLen:]
	}
	var jr jsonResponse
	if err := json.Unmarshal(js, &jr); err != nil {
		return nil, invalidf("not an inference response: %v", err)
	}
	resp := &InferResponse{ModelName: jr.ModelName, ModelVersion: jr.ModelVersion, ID: jr.ID}
	var err error
	if resp.Parameters, err = decodeParams("response", jr.Parameters); err != nil {
		return nil, err
	}
	budget := limits.NewBudget()
	for _, o := range jr.Outputs {
		var t Input
		if t, bin, err = decodeInput(o, bin, budget); err != nil {
			return nil, err
		}
		resp.Outputs = append(resp.Outputs, Output(t))
	}
	if len(bin) > 0 {
		return nil, invalidf("%d bytes of binary data follow the JSON that no output claims", len(bin))
	}
	return resp, nil
}

// BinaryOutputs says which of resp's outputs the request asked to receive
// as binary data: all of them with the request parameter
// binary_data_output, else those requested with binary_data.
func BinaryOutputs(req *InferRequest, resp *InferResponse) ([]bool, error) {
	all, err := req.Parameters.Bool(ParamBinaryDataOutput)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(resp.Outputs))
	for i, o := range resp.Outputs {
		out[i] = all
		for _, r := range req.Outputs {
			if r.Name != o.Name {
				continue
			}
			b, err := r.Parameters.Bool(ParamBinaryData)
			if err != nil {
				return nil, err
			}
			if _, set := r.Parameters[ParamBinaryData]; set {
				out[i] = b
			}
		}
	}
	return out, nil
}

// EncodeResponse writes resp as the REST response body. Outputs marked in
// binary carry binary_data_size instead of data and their raw bytes follow
// the JSON, in output order; headerLen is then the JSON's length (for the
// Inference-Header-Content-Length header), otherwise -1. Floats are written
// in the shortest form that reads back to the same value; NaN and the
// infinities as the strings "NaN", "Infinity" and "-Infinity". BYTES data
// that is not valid UTF-8 is written base64 with content_type "base64".
func EncodeResponse(resp *InferResponse, binary []bool) (body []byte, headerLen int, err error) {
	var b bytes.Buffer
	b.WriteString(`{"model_name":`)
	writeJSONString(&b, resp.ModelName)
	if resp.ModelVersion != "" {
		b.WriteString(`,"model_version":`)
		writeJSONString(&b, resp.ModelVersion)
	}
	if resp.ID != "" {
		b.WriteString(`,"id":`)
		writeJSONString(&b, resp.ID)
	}
	if len(resp.Parameters) > 0 {
		b.WriteString(`,"parameters":`)
		if err := writeParams(&b, resp.Parameters); err != nil {
			return nil, 0, err
		}
	}
	b.WriteString(`,"outputs":[`)
	anyBinary := false
	for i, o := range resp.Outputs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":`)
		writeJSONString(&b, o.Name)
		b.WriteString(`,"datatype":`)
		writeJSONString(&b, string(o.DType))
		b.WriteString(`,"shape":`)
		writeShape(&b, o.Shape)
		params := o.Parameters
		isBinary := i < len(binary) && binary[i]
		base64Bytes := false
		if isBinary {
			anyBinary = true
			params = withParam(params, ParamBinaryDataSize, int64(RawSize(o.Tensor)))
		} else if d, ok := o.Data.([][]byte); ok && !allUTF8(d) {
			base64Bytes = true
			params = withParam(params, ParamContentType, "base64")
		}
		if len(params) > 0 {
			b.WriteString(`,"parameters":`)
			if err := writeParams(&b, params); err != nil {
				return nil, 0, err
			}
		}
		if !isBinary {
			b.WriteString(`,"data":`)
			if err := writeData(&b, o.Tensor, base64Bytes); err != nil {
				return nil, 0, fmt.Errorf("output %q: %w", o.Name, err)
			}
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	if !anyBinary {
		return b.Bytes(), -1, nil
	}
	headerLen = b.Len()
	out := b.Bytes()
	for i, o := range resp.Outputs {
		if i < len(binary) && binary[i] {
			if out, err = AppendRaw(out, o.Tensor); err != nil {
				return nil, 0, err
			}
		}
	}
	return out, headerLen, nil
}

func withParam(p Parameters, k string, v any) Parameters {
	out := make(Parameters, len(p)+1)
	for key, val := range p {
		out[key] = val
	}
	out[k] = v
	return out
}

func allUTF8(d [][]byte) bool {
	for _, e := range d {
		if !utf8.Valid(e) {
			return false
		}
	}
	return true
}

func writeJSONString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}

func writeShape(b *bytes.Buffer, shape []int64) {
	b.WriteByte('[')
	for i, d := range shape {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(d, 10))
	}
	b.WriteByte(']')
}

func writeParams(b *bytes.Buffer, p Parameters) error {
	enc, err := json.Marshal(map[string]any(p))
	if err != nil {
		return fmt.Errorf("oip: parameters: %w", err)
	}
	b.Write(enc)
	return nil
}

func writeData(b *bytes.Buffer, t engine.Tensor, base64Bytes bool) error {
	var buf []byte
	list := func(n int, item func(dst []byte, i int) []byte) {
		buf = append(buf[:0], '[')
		for i := 0; i < n; i++ {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = item(buf, i)
			if len(buf) > 64<<10 { // flush now and then to keep buf small
				b.Write(buf)
				buf = buf[:0]
			}
		}
		buf = append(buf, ']')
		b.Write(buf)
	}
	switch d := t.Data.(type) {
	case []float32:
		list(len(d), func(dst []byte, i int) []byte { return appendFloat(dst, float64(d[i]), 32) })
	case []float64:
		list(len(d), func(dst []byte, i int) []byte { return appendFloat(dst, d[i], 64) })
	case []uint16:
		if t.DType == engine.FP16 {
			list(len(d), func(dst []byte, i int) []byte { return appendFloat(dst, float64(HalfToFloat32(d[i])), 32) })
		} else {
			list(len(d), func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(d[i]), 10) })
		}
	case []int8:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(d[i]), 10) })
	case []int16:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(d[i]), 10) })
	case []int32:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendInt(dst, int64(d[i]), 10) })
	case []int64:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendInt(dst, d[i], 10) })
	case []uint8:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(d[i]), 10) })
	case []uint32:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendUint(dst, uint64(d[i]), 10) })
	case []uint64:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendUint(dst, d[i], 10) })
	case []bool:
		list(len(d), func(dst []byte, i int) []byte { return strconv.AppendBool(dst, d[i]) })
	case [][]byte:
		list(len(d), func(dst []byte, i int) []byte {
			if base64Bytes {
				dst = append(dst, '"')
				dst = base64.StdEncoding.AppendEncode(dst, d[i])
				return append(dst, '"')
			}
			enc, _ := json.Marshal(string(d[i]))
			return append(dst, enc...)
		})
	default:
		return fmt.Errorf("cannot encode tensor data %T", t.Data)
	}
	return nil
}

func appendFloat(dst []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(dst, `"Infinity"`...)
	case math.IsInf(f, -1):
		return append(dst, `"-Infinity"`...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, bits)
}

// Package onnxtest helps tests that need ONNX Runtime: it loads the runtime
// or skips (fails under CI=true) with a message naming the setup script, and
// it writes tiny ONNX models in memory so engine tests do not depend on
// model files.
package onnxtest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/visionserve/visionserve/internal/engine"
	"github.com/visionserve/visionserve/internal/engine/onnx"
	"github.com/visionserve/visionserve/internal/testenv"
)

// Init loads the ONNX Runtime for a test. When the library cannot be found
// the test is skipped with a message naming hack/setup-onnxruntime.sh, or
// failed when CI=true; any other failure fails the test.
func Init(t testing.TB) onnx.Runtime {
	t.Helper()
	rt, err := onnx.Init("")
	if errors.Is(err, onnx.ErrRuntimeNotFound) {
		testenv.Missing(t, err.Error())
	}
	if err != nil {
		t.Fatalf("onnx.Init: %v", err)
	}
	return rt
}

// Value declares a graph input or output. A negative entry in Shape is a
// dynamic dimension (a dim_param named after the value and axis).
type Value struct {
	Name  string
	DType engine.DType
	Shape []int64
}

// Node is one operator of a graph.
type Node struct {
	Op      string
	Inputs  []string
	Outputs []string
}

// Constant is an initializer of a graph: a named INT64 or FP32 tensor
// whose data is stored in the model.
type Constant struct {
	Name   string
	Tensor engine.Tensor
}

// SparseConstant is a sparse FP32 initializer: a tensor of Dims that is
// zero but for Values at the flat Indices. ONNX Runtime makes it dense
// when it loads the model.
type SparseConstant struct {
	Name    string
	Dims    []int64
	Indices []int64
	Values  []float32
}

// Graph is a whole graph: nodes run in order on the inputs and constants
// to produce the outputs.
type Graph struct {
	Nodes     []Node
	Inputs    []Value
	Outputs   []Value
	Constants []Constant
	Sparse    []SparseConstant
}

// Model encodes an ONNX ModelProto (IR version 8, default opset 13) whose
// graph runs nodes in order on inputs to produce outputs.
func Model(nodes []Node, inputs, outputs []Value) ([]byte, error) {
	return Graph{Nodes: nodes, Inputs: inputs, Outputs: outputs}.Encode()
}

// Encode encodes the graph as an ONNX ModelProto (IR version 8, default
// opset 13).
func (gr Graph) Encode() ([]byte, error) {
	var g []byte
	for i, n := range gr.Nodes {
		var nb []byte
		for _, in := range n.Inputs {
			nb = appendString(nb, 1, in)
		}
		for _, out := range n.Outputs {
			nb = appendString(nb, 2, out)
		}
		nb = appendString(nb, 3, fmt.Sprintf("node%d", i))
		nb = appendString(nb, 4, n.Op)
		g = appendBytes(g, 1, nb)
	}
	g = appendString(g, 2, "onnxtest")
	for _, c := range gr.Constants {
		tb, err := tensorProto(c)
		if err != nil {
			return nil, err
		}
		g = appendBytes(g, 5, tb) // initializer
	}
	for _, c := range gr.Sparse {
		values, err := tensorProto(Constant{Name: c.Name, Tensor: engine.NewTensor([]int64{int64(len(c.Values))}, c.Values)})
		if err != nil {
			return nil, err
		}
		indices, err := tensorProto(Constant{Tensor: engine.NewTensor([]int64{int64(len(c.Indices))}, c.Indices)})
		if err != nil {
			return nil, err
		}
		var sp []byte
		sp = appendBytes(sp, 1, values)
		sp = appendBytes(sp, 2, indices)
		for _, d := range c.Dims {
			sp = protowire.AppendTag(sp, 3, protowire.VarintType)
			sp = protowire.AppendVarint(sp, uint64(d))
		}
		g = appendBytes(g, 15, sp) // sparse_initializer
	}
	for _, v := range gr.Inputs {
		vb, err := valueInfo(v)
		if err != nil {
			return nil, err
		}
		g = appendBytes(g, 11, vb)
	}
	for _, v := range gr.Outputs {
		vb, err := valueInfo(v)
		if err != nil {
			return nil, err
		}
		g = appendBytes(g, 12, vb)
	}

	var opset []byte
	opset = appendString(opset, 1, "")
	opset = protowire.AppendTag(opset, 2, protowire.VarintType)
	opset = protowire.AppendVarint(opset, 13)

	var m []byte
	m = protowire.AppendTag(m, 1, protowire.VarintType) // ir_version
	m = protowire.AppendVarint(m, 8)
	m = appendString(m, 2, "visionserve-onnxtest") // producer_name
	m = appendBytes(m, 7, g)                       // graph
	m = appendBytes(m, 8, opset)                   // opset_import
	return m, nil
}

// tensorProto encodes a constant as a TensorProto with raw little-endian
// data.
func tensorProto(c Constant) ([]byte, error) {
	var raw []byte
	switch d := c.Tensor.Data.(type) {
	case []int64:
		for _, v := range d {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
	case []float32:
		for _, v := range d {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
	default:
		return nil, fmt.Errorf("onnxtest: constant %q: only INT64 and FP32 data, got %T", c.Name, c.Tensor.Data)
	}
	et, _ := elemType(c.Tensor.DType)
	var tb []byte
	for _, d := range c.Tensor.Shape {
		tb = protowire.AppendTag(tb, 1, protowire.VarintType) // dims
		tb = protowire.AppendVarint(tb, uint64(d))
	}
	tb = protowire.AppendTag(tb, 2, protowire.VarintType) // data_type
	tb = protowire.AppendVarint(tb, et)
	if c.Name != "" {
		tb = appendString(tb, 8, c.Name)
	}
	tb = appendBytes(tb, 9, raw) // raw_data
	return tb, nil
}

// Identity is a one-input, one-output model that returns its input.
func Identity(dtype engine.DType, shape []int64) ([]byte, error) {
	return Model([]Node{{Op: "Identity", Inputs: []string{"x"}, Outputs: []string{"y"}}},
		[]Value{{"x", dtype, shape}}, []Value{{"y", dtype, shape}})
}

// elemType maps a DType to ONNX's TensorProto.DataType.
func elemType(d engine.DType) (uint64, bool) {
	switch d {
	case engine.FP32:
		return 1, true
	case engine.UINT8:
		return 2, true
	case engine.INT8:
		return 3, true
	case engine.UINT16:
		return 4, true
	case engine.INT16:
		return 5, true
	case engine.INT32:
		return 6, true
	case engine.INT64:
		return 7, true
	case engine.BYTES:
		return 8, true
	case engine.BOOL:
		return 9, true
	case engine.FP16:
		return 10, true
	case engine.FP64:
		return 11, true
	case engine.UINT32:
		return 12, true
	case engine.UINT64:
		return 13, true
	}
	return 0, false
}

func valueInfo(v Value) ([]byte, error) {
	et, ok := elemType(v.DType)
	if !ok {
		return nil, fmt.Errorf("onnxtest: no ONNX element type for %q", v.DType)
	}
	var shape []byte
	for i, d := range v.Shape {
		var dim []byte
		if d < 0 {
			dim = appendString(dim, 2, fmt.Sprintf("%s_%d", v.Name, i)) // dim_param
		} else {
			dim = protowire.AppendTag(dim, 1, protowire.VarintType) // dim_value
			dim = protowire.AppendVarint(dim, uint64(d))
		}
		shape = appendBytes(shape, 1, dim)
	}
	var tensor []byte
	tensor = protowire.AppendTag(tensor, 1, protowire.VarintType) // elem_type
	tensor = protowire.AppendVarint(tensor, et)
	tensor = appendBytes(tensor, 2, shape)
	var typ []byte
	typ = appendBytes(typ, 1, tensor) // tensor_type
	var vi []byte
	vi = appendString(vi, 1, v.Name)
	vi = appendBytes(vi, 2, typ)
	return vi, nil
}

func appendString(b []byte, field protowire.Number, s string) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func appendBytes(b []byte, field protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

package engine

import (
	"context"
	"fmt"
)

// DType names a tensor element type, spelled as in the Open Inference
// Protocol so the names can go on the wire unchanged.
type DType string

// Element types. The Go type that holds each in Tensor.Data is given beside it.
const (
	FP32   DType = "FP32"   // []float32
	FP64   DType = "FP64"   // []float64
	FP16   DType = "FP16"   // []uint16, IEEE 754 half-precision bit patterns
	INT8   DType = "INT8"   // []int8
	INT16  DType = "INT16"  // []int16
	INT32  DType = "INT32"  // []int32
	INT64  DType = "INT64"  // []int64
	UINT8  DType = "UINT8"  // []uint8
	UINT16 DType = "UINT16" // []uint16 (see DTypeOf for how FP16 is told apart)
	UINT32 DType = "UINT32" // []uint32
	UINT64 DType = "UINT64" // []uint64
	BOOL   DType = "BOOL"   // []bool
	BYTES  DType = "BYTES"  // [][]byte
)

// Tensor is a dense row-major tensor handed to or returned by an engine.
// Data holds exactly the product of Shape elements, as the slice type listed
// beside each DType. Half-precision data is []uint16 like UINT16, so a
// Tensor carries its DType explicitly.
type Tensor struct {
	DType DType
	Shape []int64
	Data  any
}

// Element is the set of Go types that back numeric tensors.
type Element interface {
	~float32 | ~float64 | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint8 | ~uint16 | ~uint32 | ~uint64 | ~bool
}

// NewTensor wraps data (not copied) as a tensor of shape. The dtype follows
// from T; uint16 data is UINT16 (set DType to FP16 for half floats).
func NewTensor[T Element](shape []int64, data []T) Tensor {
	return Tensor{DType: dtypeOf(data), Shape: shape, Data: data}
}

func dtypeOf(data any) DType {
	switch data.(type) {
	case []float32:
		return FP32
	case []float64:
		return FP64
	case []int8:
		return INT8
	case []int16:
		return INT16
	case []int32:
		return INT32
	case []int64:
		return INT64
	case []uint8:
		return UINT8
	case []uint16:
		return UINT16
	case []uint32:
		return UINT32
	case []uint64:
		return UINT64
	case []bool:
		return BOOL
	case [][]byte:
		return BYTES
	}
	return ""
}

// Elements is the number of elements Shape describes; negative dimensions
// count as zero.
func (t Tensor) Elements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return 0
		}
		n *= d
	}
	return n
}

// Validate reports a tensor whose Data type does not match its DType or
// whose length does not match its Shape.
func (t Tensor) Validate() error {
	got := dtypeOf(t.Data)
	if got != t.DType && !(t.DType == FP16 && got == UINT16) {
		return fmt.Errorf("tensor of dtype %s holds %T", t.DType, t.Data)
	}
	for i, d := range t.Shape {
		if d < 0 {
			return fmt.Errorf("tensor dimension %d is negative (%d)", i, d)
		}
	}
	if n := dataLen(t.Data); int64(n) != t.Elements() {
		return fmt.Errorf("tensor of shape %v needs %d elements, has %d", t.Shape, t.Elements(), n)
	}
	return nil
}

func dataLen(data any) int {
	switch d := data.(type) {
	case []float32:
		return len(d)
	case []float64:
		return len(d)
	case []int8:
		return len(d)
	case []int16:
		return len(d)
	case []int32:
		return len(d)
	case []int64:
		return len(d)
	case []uint8:
		return len(d)
	case []uint16:
		return len(d)
	case []uint32:
		return len(d)
	case []uint64:
		return len(d)
	case []bool:
		return len(d)
	case [][]byte:
		return len(d)
	}
	return -1
}

// TensorData returns t's elements as []T, or an error naming both types
// when t holds something else.
func TensorData[T Element](t Tensor) ([]T, error) {
	d, ok := t.Data.([]T)
	if !ok {
		var want []T
		return nil, fmt.Errorf("tensor holds %T (%s), want %T", t.Data, t.DType, want)
	}
	return d, nil
}

// TensorInfo describes one input or output of a model. A dimension of -1 is
// dynamic (symbolic in the model).
type TensorInfo struct {
	Name  string  `json:"name"`
	DType DType   `json:"datatype"`
	Shape []int64 `json:"shape"`
}

// TensorRunner runs a model once: inputs in the order of the model's
// inputs, outputs returned in the order of its outputs. It must return
// promptly with an error wrapping ctx.Err() once ctx is done. Whether an
// implementation may be shared by goroutines is part of its documentation;
// a pipeline that holds one across requests needs one that is (a pool).
type TensorRunner interface {
	Run(ctx context.Context, inputs []Tensor) ([]Tensor, error)
}

package onnx

import (
	"bytes"
	"encoding/binary"
	"fmt"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/visionserve/visionserve/internal/engine"
)

func fromElementType(t ort.TensorElementDataType) (engine.DType, bool) {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return engine.FP32, true
	case ort.TensorElementDataTypeDouble:
		return engine.FP64, true
	case ort.TensorElementDataTypeFloat16:
		return engine.FP16, true
	case ort.TensorElementDataTypeInt8:
		return engine.INT8, true
	case ort.TensorElementDataTypeInt16:
		return engine.INT16, true
	case ort.TensorElementDataTypeInt32:
		return engine.INT32, true
	case ort.TensorElementDataTypeInt64:
		return engine.INT64, true
	case ort.TensorElementDataTypeUint8:
		return engine.UINT8, true
	case ort.TensorElementDataTypeUint16:
		return engine.UINT16, true
	case ort.TensorElementDataTypeUint32:
		return engine.UINT32, true
	case ort.TensorElementDataTypeUint64:
		return engine.UINT64, true
	case ort.TensorElementDataTypeBool:
		return engine.BOOL, true
	case ort.TensorElementDataTypeString:
		return engine.BYTES, true
	}
	return "", false
}

// toValue wraps t for ORT. Numeric data is shared with ORT, not copied, so
// t must not change until the run is over; FP16 and BYTES are copied.
func toValue(t engine.Tensor) (ort.Value, error) {
	shape := ort.NewShape(t.Shape...)
	switch d := t.Data.(type) {
	case []float32:
		return ort.NewTensor(shape, d)
	case []float64:
		return ort.NewTensor(shape, d)
	case []int8:
		return ort.NewTensor(shape, d)
	case []int16:
		return ort.NewTensor(shape, d)
	case []int32:
		return ort.NewTensor(shape, d)
	case []int64:
		return ort.NewTensor(shape, d)
	case []uint8:
		return ort.NewTensor(shape, d)
	case []uint16:
		if t.DType == engine.FP16 {
			b := make([]byte, 2*len(d))
			for i, v := range d {
				binary.LittleEndian.PutUint16(b[2*i:], v)
			}
			return ort.NewCustomDataTensor(shape, b, ort.TensorElementDataTypeFloat16)
		}
		return ort.NewTensor(shape, d)
	case []uint32:
		return ort.NewTensor(shape, d)
	case []uint64:
		return ort.NewTensor(shape, d)
	case []bool:
		return ort.NewTensor(shape, d)
	case [][]byte:
		st, err := ort.NewStringTensor(shape)
		if err != nil {
			return nil, err
		}
		ss := make([]string, len(d))
		for i, b := range d {
			// The binding passes C strings, which would silently cut
			// the element at its first NUL.
			if bytes.IndexByte(b, 0) >= 0 {
				return nil, fmt.Errorf("BYTES element %d contains a NUL byte, which ONNX Runtime strings cannot carry through onnxruntime_go", i)
			}
			ss[i] = string(b)
		}
		if err := st.SetContents(ss); err != nil {
			st.Destroy()
			return nil, err
		}
		return st, nil
	}
	return nil, fmt.Errorf("unsupported tensor data %T", t.Data)
}

// fromValue copies an ORT-allocated output into a Go-owned tensor. The
// binding already copied numeric data into a Go slice, which stays valid
// after the ORT value is destroyed.
func fromValue(v ort.Value) (engine.Tensor, error) {
	shape := []int64(v.GetShape())
	switch x := v.(type) {
	case *ort.Tensor[float32]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[float64]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int8]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int16]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int32]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[int64]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[uint8]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[uint16]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[uint32]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[uint64]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.Tensor[bool]:
		return engine.NewTensor(shape, x.GetData()), nil
	case *ort.CustomDataTensor:
		if ort.TensorElementDataType(x.DataType()) != ort.TensorElementDataTypeFloat16 {
			return engine.Tensor{}, fmt.Errorf("unsupported element type %s", ort.TensorElementDataType(x.DataType()))
		}
		b := x.GetData()
		d := make([]uint16, len(b)/2)
		for i := range d {
			d[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		return engine.Tensor{DType: engine.FP16, Shape: shape, Data: d}, nil
	case *ort.StringTensor:
		ss, err := x.GetContents()
		if err != nil {
			return engine.Tensor{}, err
		}
		d := make([][]byte, len(ss))
		for i, s := range ss {
			d[i] = []byte(s)
		}
		return engine.Tensor{DType: engine.BYTES, Shape: shape, Data: d}, nil
	}
	return engine.Tensor{}, fmt.Errorf("unsupported output value %T (%s)", v, v.GetONNXType())
}

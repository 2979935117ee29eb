package engine

import (
	"slices"
	"testing"
)

func TestTensorValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    Tensor
		ok   bool
	}{
		{"fp32", NewTensor([]int64{2, 3}, make([]float32, 6)), true},
		{"scalar", NewTensor([]int64{}, []int64{7}), true},
		{"zero-sized", NewTensor([]int64{0, 3}, []uint8{}), true},
		{"fp16 is carried as uint16", Tensor{DType: FP16, Shape: []int64{2}, Data: []uint16{1, 2}}, true},
		{"bytes", Tensor{DType: BYTES, Shape: []int64{2}, Data: [][]byte{{1}, {}}}, true},
		{"too little data", NewTensor([]int64{2, 3}, make([]float32, 5)), false},
		{"too much data", NewTensor([]int64{2}, make([]bool, 3)), false},
		{"dtype does not match data", Tensor{DType: INT64, Shape: []int64{1}, Data: []int32{1}}, false},
		{"negative dimension", Tensor{DType: FP32, Shape: []int64{-1, 2}, Data: []float32{}}, false},
		{"unsupported data", Tensor{DType: FP32, Shape: []int64{1}, Data: []string{"x"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.t.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestNewTensorAndData(t *testing.T) {
	x := NewTensor([]int64{3}, []int32{1, 2, 3})
	if x.DType != INT32 || x.Elements() != 3 {
		t.Errorf("NewTensor = %+v", x)
	}
	d, err := TensorData[int32](x)
	if err != nil || !slices.Equal(d, []int32{1, 2, 3}) {
		t.Errorf("TensorData = %v, %v", d, err)
	}
	if _, err := TensorData[float32](x); err == nil {
		t.Error("TensorData[float32] of an INT32 tensor succeeded")
	}
	if u := NewTensor([]int64{1}, []uint16{1}); u.DType != UINT16 {
		t.Errorf("uint16 data is %s, want UINT16 (FP16 must be set explicitly)", u.DType)
	}
}

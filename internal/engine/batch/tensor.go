package batch

import (
	"fmt"

	"github.com/visionserve/visionserve/internal/engine"
)

// concat joins tensors of the same dtype and trailing shape along their
// first dimension.
func concat(ts []engine.Tensor, rows int64) (engine.Tensor, error) {
	first := ts[0]
	shape := append([]int64{rows}, first.Shape[1:]...)
	out := engine.Tensor{DType: first.DType, Shape: shape}
	var err error
	switch first.Data.(type) {
	case []float32:
		out.Data, err = join[float32](ts)
	case []float64:
		out.Data, err = join[float64](ts)
	case []int8:
		out.Data, err = join[int8](ts)
	case []int16:
		out.Data, err = join[int16](ts)
	case []int32:
		out.Data, err = join[int32](ts)
	case []int64:
		out.Data, err = join[int64](ts)
	case []uint8:
		out.Data, err = join[uint8](ts)
	case []uint16:
		out.Data, err = join[uint16](ts)
	case []uint32:
		out.Data, err = join[uint32](ts)
	case []uint64:
		out.Data, err = join[uint64](ts)
	case []bool:
		out.Data, err = join[bool](ts)
	case [][]byte:
		out.Data, err = join[[]byte](ts)
	default:
		return out, fmt.Errorf("cannot batch tensor data %T", first.Data)
	}
	if err != nil {
		return out, err
	}
	if err := out.Validate(); err != nil {
		return out, fmt.Errorf("joining a batch: %w", err)
	}
	return out, nil
}

func join[T any](ts []engine.Tensor) ([]T, error) {
	n := 0
	for _, t := range ts {
		d, ok := t.Data.([]T)
		if !ok {
			return nil, fmt.Errorf("tensors of different types (%T and %T)", ts[0].Data, t.Data)
		}
		n += len(d)
	}
	out := make([]T, 0, n)
	for _, t := range ts {
		out = append(out, t.Data.([]T)...)
	}
	return out, nil
}

// slice returns rows [start, start+n) of t along its first dimension,
// sharing t's data.
func slice(t engine.Tensor, start, n int64) (engine.Tensor, error) {
	total := t.Shape[0]
	if total == 0 {
		return t, nil
	}
	stride := t.Elements() / total
	shape := append([]int64{n}, t.Shape[1:]...)
	lo, hi := start*stride, (start+n)*stride
	out := engine.Tensor{DType: t.DType, Shape: shape}
	switch d := t.Data.(type) {
	case []float32:
		out.Data = d[lo:hi:hi]
	case []float64:
		out.Data = d[lo:hi:hi]
	case []int8:
		out.Data = d[lo:hi:hi]
	case []int16:
		out.Data = d[lo:hi:hi]
	case []int32:
		out.Data = d[lo:hi:hi]
	case []int64:
		out.Data = d[lo:hi:hi]
	case []uint8:
		out.Data = d[lo:hi:hi]
	case []uint16:
		out.Data = d[lo:hi:hi]
	case []uint32:
		out.Data = d[lo:hi:hi]
	case []uint64:
		out.Data = d[lo:hi:hi]
	case []bool:
		out.Data = d[lo:hi:hi]
	case [][]byte:
		out.Data = d[lo:hi:hi]
	default:
		return out, fmt.Errorf("cannot split tensor data %T", t.Data)
	}
	return out, nil
}

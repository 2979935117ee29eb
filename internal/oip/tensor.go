package oip

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/visionserve/visionserve/internal/engine"
)

// Limits bound what one inference request may ask of the server, before any
// tensor data is allocated.
type Limits struct {
	// MaxBytes bounds an encoded request (a REST body, a gRPC message);
	// the transports enforce it while reading.
	MaxBytes int64
	// MaxTensors bounds the inputs plus requested outputs of a request.
	MaxTensors int
	// MaxElements bounds the elements of all input tensors together.
	MaxElements int64
}

// MaxRank bounds the number of dimensions of a tensor.
const MaxRank = 16

// DefaultLimits allow 32 MiB requests, 64 tensors and 16 Mi elements
// (64 MiB of FP32).
func DefaultLimits() Limits { return Limits{MaxBytes: 32 << 20, MaxTensors: 64, MaxElements: 1 << 24} }

// WithDefaults fills unset fields from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxTensors <= 0 {
		l.MaxTensors = d.MaxTensors
	}
	if l.MaxElements <= 0 {
		l.MaxElements = d.MaxElements
	}
	return l
}

// Budget counts the elements a request's inputs use against
// Limits.MaxElements. Decoders take from it before allocating a tensor.
type Budget struct{ left int64 }

// NewBudget starts a request's element budget.
func (l Limits) NewBudget() *Budget { return &Budget{left: l.WithDefaults().MaxElements} }

// Take checks shape (every dimension at least 1, at most MaxRank of them)
// and takes its element count from the budget. An empty input is refused
// here, as the client's mistake it is, rather than left to fail inside the
// model's runtime.
func (b *Budget) Take(name string, shape []int64) (int64, error) {
	if len(shape) > MaxRank {
		return 0, invalidf("input %q has %d dimensions; at most %d are supported", name, len(shape), MaxRank)
	}
	n := int64(1)
	for i, d := range shape {
		if d < 0 {
			return 0, invalidf("input %q: dimension %d is negative (%d)", name, i, d)
		}
		if d == 0 {
			return 0, invalidf("input %q of shape %v is empty: dimension %d is 0, and every dimension must be at least 1", name, shape, i)
		}
		if n > b.left/d {
			return 0, tooLargef("input %q of shape %v has more elements than the %d the request has left", name, shape, b.left)
		}
		n *= d
	}
	b.left -= n
	return n, nil
}

// ParseDType checks a datatype name from the wire.
func ParseDType(s string) (engine.DType, error) {
	switch d := engine.DType(s); d {
	case engine.FP32, engine.FP64, engine.FP16, engine.INT8, engine.INT16, engine.INT32, engine.INT64,
		engine.UINT8, engine.UINT16, engine.UINT32, engine.UINT64, engine.BOOL, engine.BYTES:
		return d, nil
	}
	return "", invalidf("unknown datatype %q (use BOOL, UINT8..UINT64, INT8..INT64, FP16, FP32, FP64 or BYTES)", s)
}

// elemSize is the raw size of one element; BYTES elements have none.
func elemSize(d engine.DType) int {
	switch d {
	case engine.INT8, engine.UINT8, engine.BOOL:
		return 1
	case engine.INT16, engine.UINT16, engine.FP16:
		return 2
	case engine.INT32, engine.UINT32, engine.FP32:
		return 4
	case engine.INT64, engine.UINT64, engine.FP64:
		return 8
	}
	return 0
}

// DecodeRaw decodes the raw form of a tensor of n elements: little-endian,
// row-major, no padding; BOOL one byte (0 or 1); BYTES each element a
// 4-byte little-endian length and then its bytes. This is the form of
// gRPC's raw_input_contents and of REST's binary tensor extension. The
// tensor never shares raw's memory: a REST body is a pooled buffer that
// goes back to the pool when its handler returns, which can be before a
// batch that holds the tensor has finished.
func DecodeRaw(name string, dt engine.DType, shape []int64, n int64, raw []byte) (engine.Tensor, error) {
	t := engine.Tensor{DType: dt, Shape: shape}
	if dt == engine.BYTES {
		d, err := decodeRawBytes(name, n, raw)
		t.Data = d
		return t, err
	}
	size := int64(elemSize(dt))
	if int64(len(raw)) != n*size {
		return t, invalidf("input %q: %d raw bytes for %d %s elements of shape %v; want %d", name, len(raw), n, dt, shape, n*size)
	}
	le := binary.LittleEndian
	switch dt {
	case engine.FP32:
		d := make([]float32, n)
		for i := range d {
			d[i] = math.Float32frombits(le.Uint32(raw[4*i:]))
		}
		t.Data = d
	case engine.FP64:
		d := make([]float64, n)
		for i := range d {
			d[i] = math.Float64frombits(le.Uint64(raw[8*i:]))
		}
		t.Data = d
	case engine.FP16, engine.UINT16:
		d := make([]uint16, n)
		for i := range d {
			d[i] = le.Uint16(raw[2*i:])
		}
		t.Data = d
	case engine.INT8:
		d := make([]int8, n)
		for i := range d {
			d[i] = int8(raw[i])
		}
		t.Data = d
	case engine.INT16:
		d := make([]int16, n)
		for i := range d {
			d[i] = int16(le.Uint16(raw[2*i:]))
		}
		t.Data = d
	case engine.INT32:
		d := make([]int32, n)
		for i := range d {
			d[i] = int32(le.Uint32(raw[4*i:]))
		}
		t.Data = d
	case engine.INT64:
		d := make([]int64, n)
		for i := range d {
			d[i] = int64(le.Uint64(raw[8*i:]))
		}
		t.Data = d
	case engine.UINT8:
		t.Data = append([]uint8(nil), raw...)
	case engine.UINT32:
		d := make([]uint32, n)
		for i := range d {
			d[i] = le.Uint32(raw[4*i:])
		}
		t.Data = d
	case engine.UINT64:
		d := make([]uint64, n)
		for i := range d {
			d[i] = le.Uint64(raw[8*i:])
		}
		t.Data = d
	case engine.BOOL:
		d := make([]bool, n)
		for i, b := range raw {
			if b > 1 {
				return t, invalidf("input %q: BOOL element %d is byte %d; want 0 or 1", name, i, b)
			}
			d[i] = b == 1
		}
		t.Data = d
	default:
		return t, invalidf("input %q: unsupported datatype %s", name, dt)
	}
	return t, nil
}

func decodeRawBytes(name string, n int64, raw []byte) ([][]byte, error) {
	// Every element takes at least its 4-byte length, which bounds the
	// slice header allocation by the bytes actually received.
	if n > int64(len(raw))/4 {
		return nil, invalidf("input %q: %d raw bytes cannot hold %d BYTES elements", name, len(raw), n)
	}
	out := make([][]byte, n)
	raw = bytes.Clone(raw)
	off := 0
	for i := range out {
		if len(raw)-off < 4 {
			return nil, invalidf("input %q: raw BYTES data ends inside the length of element %d", name, i)
		}
		l := int(binary.LittleEndian.Uint32(raw[off:]))
		off += 4
		if l > len(raw)-off {
			return nil, invalidf("input %q: BYTES element %d claims %d bytes, %d remain", name, i, l, len(raw)-off)
		}
		out[i] = raw[off : off+l : off+l]
		off += l
	}
	if off != len(raw) {
		return nil, invalidf("input %q: %d raw bytes left over after %d BYTES elements", name, len(raw)-off, n)
	}
	return out, nil
}

// RawSize is the length of t's raw form.
func RawSize(t engine.Tensor) int {
	if b, ok := t.Data.([][]byte); ok {
		n := 0
		for _, e := range b {
			n += 4 + len(e)
		}
		return n
	}
	return int(t.Elements()) * elemSize(t.DType)
}

// AppendRaw appends t's raw form (see DecodeRaw) to dst.
func AppendRaw(dst []byte, t engine.Tensor) ([]byte, error) {
	le := binary.LittleEndian
	switch d := t.Data.(type) {
	case []float32:
		for _, v := range d {
			dst = le.AppendUint32(dst, math.Float32bits(v))
		}
	case []float64:
		for _, v := range d {
			dst = le.AppendUint64(dst, math.Float64bits(v))
		}
	case []int8:
		for _, v := range d {
			dst = append(dst, byte(v))
		}
	case []int16:
		for _, v := range d {
			dst = le.AppendUint16(dst, uint16(v))
		}
	case []int32:
		for _, v := range d {
			dst = le.AppendUint32(dst, uint32(v))
		}
	case []int64:
		for _, v := range d {
			dst = le.AppendUint64(dst, uint64(v))
		}
	case []uint8:
		dst = append(dst, d...)
	case []uint16:
		for _, v := range d {
			dst = le.AppendUint16(dst, v)
		}
	case []uint32:
		for _, v := range d {
			dst = le.AppendUint32(dst, v)
		}
	case []uint64:
		for _, v := range d {
			dst = le.AppendUint64(dst, v)
		}
	case []bool:
		for _, v := range d {
			if v {
				dst = append(dst, 1)
			} else {
				dst = append(dst, 0)
			}
		}
	case [][]byte:
		for _, v := range d {
			dst = le.AppendUint32(dst, uint32(len(v)))
			dst = append(dst, v...)
		}
	default:
		return dst, fmt.Errorf("oip: cannot encode tensor data %T", t.Data)
	}
	return dst, nil
}

// HalfToFloat32 converts IEEE 754 half-precision bits to a float32 exactly.
func HalfToFloat32(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0x1f: // infinity or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant * 2^-24
		f := float32(mant) * (1.0 / (1 << 24))
		if sign != 0 {
			f = -f
		}
		return f
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// HalfFromFloat32 rounds f to the nearest half-precision value (ties to
// even), overflowing to infinity as IEEE 754 does.
func HalfFromFloat32(f float32) uint16 { return HalfFromFloat64(float64(f)) }

// HalfFromFloat64 rounds f to the nearest half-precision value (ties to
// even) in one step, so a decimal parsed as float64 is rounded only twice
// at most in the way every parser does (decimal to float64, float64 to half).
func HalfFromFloat64(f float64) uint16 {
	b := math.Float64bits(f)
	sign := uint16(b>>48) & 0x8000
	exp := int64(b>>52) & 0x7ff
	mant := b & (1<<52 - 1)
	if exp == 0x7ff {
		if mant != 0 {
			return sign | 0x7e00 // a quiet NaN
		}
		return sign | 0x7c00
	}
	e := exp - 1023 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		// A half subnormal counts units of 2^-24: the 53-bit
		// significand times 2^(e-43).
		shift := uint64(43 - e)
		if shift > 53 {
			return sign
		}
		full := mant | 1<<52
		h := full >> shift
		rem := full & (1<<shift - 1)
		half := uint64(1) << (shift - 1)
		if rem > half || rem == half && h&1 == 1 {
			h++ // may carry into the smallest normal, which is right
		}
		return sign | uint16(h)
	}
	h := uint64(e)<<10 | mant>>42
	rem := mant & (1<<42 - 1)
	if rem > 1<<41 || rem == 1<<41 && h&1 == 1 {
		h++ // may carry into the exponent, up to infinity, which is right
	}
	return sign | uint16(h)
}

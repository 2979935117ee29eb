package pdf

import (
	"encoding/binary"
	"math"
)

// srgbProfile builds a small ICC v2 display profile for sRGB (IEC
// 61966-2.1 primaries adapted to D50, a 2.2 gamma tone curve): the output
// intent a PDF/A file needs for its DeviceRGB and DeviceGray images.
func srgbProfile() []byte {
	be := binary.BigEndian
	xyz := func(x, y, z float64) []byte {
		b := []byte("XYZ \x00\x00\x00\x00")
		for _, v := range []float64{x, y, z} {
			b = be.AppendUint32(b, uint32(int32(math.Round(v*65536))))
		}
		return b
	}
	desc := func(s string) []byte {
		b := []byte("desc\x00\x00\x00\x00")
		b = be.AppendUint32(b, uint32(len(s)+1))
		b = append(b, s...)
		b = append(b, 0)
		b = append(b, make([]byte, 4+4+2+1+67)...) // no Unicode or ScriptCode description
		return b
	}
	curve := []byte("curv\x00\x00\x00\x00\x00\x00\x00\x01\x02\x33") // one entry: gamma 2.2 (u8Fixed8)
	type tag struct {
		sig  string
		data []byte
	}
	tags := []tag{
		{"desc", desc("sRGB IEC61966-2.1 (visionserve)")},
		{"cprt", append([]byte("text\x00\x00\x00\x00No copyright, use freely"), 0)},
		{"wtpt", xyz(0.9642, 1.0, 0.8249)},
		{"rXYZ", xyz(0.4361, 0.2225, 0.0139)},
		{"gXYZ", xyz(0.3851, 0.7169, 0.0971)},
		{"bXYZ", xyz(0.1431, 0.0606, 0.7141)},
		{"rTRC", curve},
		{"gTRC", curve},
		{"bTRC", curve},
	}
	table := be.AppendUint32(nil, uint32(len(tags)))
	var body []byte
	off := 128 + 4 + 12*len(tags)
	for _, t := range tags {
		table = append(table, t.sig...)
		table = be.AppendUint32(table, uint32(off+len(body)))
		table = be.AppendUint32(table, uint32(len(t.data)))
		body = append(body, t.data...)
		for len(body)%4 != 0 {
			body = append(body, 0)
		}
	}
	h := make([]byte, 128)
	be.PutUint32(h[0:], uint32(128+len(table)+len(body)))
	be.PutUint32(h[8:], 0x02100000) // version 2.1
	copy(h[12:], "mntrRGB XYZ ")
	be.PutUint16(h[24:], 2024) // creation date: 2024-01-01
	be.PutUint16(h[26:], 1)
	be.PutUint16(h[28:], 1)
	copy(h[36:], "acsp")
	copy(h[68:], xyz(0.9642, 1.0, 0.8249)[8:]) // PCS illuminant D50
	out := append(h, table...)
	return append(out, body...)
}

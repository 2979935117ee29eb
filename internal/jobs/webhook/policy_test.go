package webhook

import (
	"errors"
	"net/netip"
	"testing"
)

// Issue 11 item 9: the policy, as a table. Every range IANA marks as not
// globally reachable is refused, in IPv4 and IPv6, and so is any IPv6
// form that carries such an IPv4 address (IPv4-mapped, NAT64, 6to4);
// public addresses in any of those forms pass.
func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		addr string
		ok   bool
	}{
		// Public.
		{"8.8.8.8", true},
		{"1.1.1.1", true},
		{"93.184.215.14", true},
		{"100.63.255.255", true}, // just below 100.64.0.0/10
		{"100.128.0.0", true},    // just above it
		{"198.17.255.255", true}, // just below 198.18.0.0/15
		{"198.20.0.0", true},     // just above it
		{"2606:4700:4700::1111", true},
		{"2a00:1450:4001:81c::200e", true},
		{"::ffff:8.8.8.8", true},   // IPv4-mapped public
		{"64:ff9b::808:808", true}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", true},  // 6to4 of 8.8.8.8
		// IPv4, not public.
		{"0.0.0.0", false},
		{"0.1.2.3", false},
		{"10.0.0.1", false},
		{"100.64.0.1", false},
		{"100.100.100.200", false}, // Alibaba Cloud metadata
		{"100.127.255.254", false},
		{"127.0.0.1", false},
		{"127.255.255.254", false},
		{"169.254.169.254", false}, // AWS, GCP, Azure metadata
		{"172.16.0.1", false},
		{"172.31.255.255", false},
		{"192.0.0.192", false}, // Oracle Cloud metadata
		{"192.0.2.1", false},
		{"192.88.99.1", false},
		{"192.168.1.1", false},
		{"198.18.0.1", false},
		{"198.19.255.255", false},
		{"198.51.100.7", false},
		{"203.0.113.9", false},
		{"224.0.0.1", false},
		{"239.255.255.250", false},
		{"240.0.0.1", false},
		{"255.255.255.255", false},
		// IPv6, not public.
		{"::", false},
		{"::1", false},
		{"::127.0.0.1", false}, // IPv4-compatible (deprecated)
		{"fe80::1", false},
		{"fe80::1%eth0", false},
		{"fc00::1", false},
		{"fd12:3456::1", false},
		{"fec0::1", false}, // site-local (deprecated)
		{"ff02::1", false},
		{"ff05::2", false},
		{"100::1", false},       // discard-only
		{"64:ff9b:1::1", false}, // local-use NAT64
		{"2001::1", false},      // Teredo
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", false},
		{"2001:2::1", false},   // benchmarking
		{"2001:20::1", false},  // ORCHIDv2
		{"2001:db8::1", false}, // documentation
		{"3fff::1", false},     // documentation
		{"5f00::1", false},     // SRv6 SIDs, outside 2000::/3
		// IPv6 forms of private IPv4.
		{"::ffff:127.0.0.1", false},
		{"::ffff:169.254.169.254", false},
		{"::ffff:10.1.2.3", false},
		{"64:ff9b::a00:1", false},     // NAT64 of 10.0.0.1
		{"64:ff9b::6464:64c8", false}, // NAT64 of 100.100.100.200
		{"64:ff9b::7f00:1", false},    // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", false}, // NAT64 of 169.254.169.254
		{"2002:c0a8:101::1", false},   // 6to4 of 192.168.1.1
		{"2002:a9fe:a9fe::", false},   // 6to4 of 169.254.169.254
		{"2002:7f00:1::1", false},     // 6to4 of 127.0.0.1
		{"2002:c612:1::1", false},     // 6to4 of 198.18.0.1
	} {
		ip, err := netip.ParseAddr(tc.addr)
		if err != nil {
			t.Fatalf("%s: %v", tc.addr, err)
		}
		err = CheckAddress(ip)
		if (err == nil) != tc.ok {
			t.Errorf("%s: allowed %v, want %v (%v)", tc.addr, err == nil, tc.ok, err)
		}
		if err != nil && !errors.Is(err, ErrAddressNotPublic) {
			t.Errorf("%s: %v is not ErrAddressNotPublic", tc.addr, err)
		}
	}
}

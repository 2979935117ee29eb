package webhook

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrAddressNotPublic: a webhook would reach an address that is not on
// the public internet.
var ErrAddressNotPublic = errors.New("webhook address is not public")

// blocked are the ranges a webhook may never reach (unless private
// networks are allowed), from IANA's IPv4 and IPv6 Special-Purpose
// Address Registries: everything not globally reachable, and the
// benchmarking, documentation and reserved blocks. IPv6 outside 2000::/3
// (global unicast) is refused before this list is read; addresses that
// embed an IPv4 address (IPv4-mapped, NAT64, 6to4) are judged by it.
var blocked = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this network"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared address space (carrier-grade NAT, cloud metadata)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (cloud metadata)"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (and broadcast)"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignments (Teredo, benchmarking, ORCHID)"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
}

var (
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour      = netip.MustParsePrefix("2002::/16")
)

// CheckAddress says why a webhook may not be sent to ip, or nil when it
// may. It is applied to every address dialled, after DNS (so a name that
// resolves to a private address, or is rebound to one, is refused), and
// to an address written in a webhook URL at submission.
func CheckAddress(ip netip.Addr) error {
	ip = ip.WithZone("")
	in := ip
	if ip.Is6() {
		switch {
		case ip.Is4In6():
			ip = ip.Unmap()
		case nat64.Contains(ip):
			b := ip.As16()
			ip = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(ip):
			b := ip.As16()
			ip = netip.AddrFrom4([4]byte(b[2:6]))
		case !globalUnicast6.Contains(ip):
			return fmt.Errorf("%w: %s is outside IPv6 global unicast (loopback, link-local, unique local, multicast or reserved)", ErrAddressNotPublic, in)
		}
	}
	for _, b := range blocked {
		if b.prefix.Contains(ip) {
			if ip != in {
				return fmt.Errorf("%w: %s embeds %s (%s)", ErrAddressNotPublic, in, ip, b.what)
			}
			return fmt.Errorf("%w: %s (%s)", ErrAddressNotPublic, in, b.what)
		}
	}
	return nil
}

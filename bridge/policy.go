package bridge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/acommgo/acomm"
)

// HookPolicy says which addresses a bridge may deliver answers to. The
// zero value refuses loopback, link-local, unspecified (0.0.0.0/8, ::)
// and multicast addresses, in every IPv6 spelling of the IPv4 ones
// (IPv4-mapped, NAT64, IPv4-compatible; see CheckAddr), which a caller on
// another machine has no business making the bridge reach (the bridge's
// own host, cloud metadata services at 169.254.169.254), and allows every
// other address.
//
// The check is made on the address actually dialed, after name
// resolution, inside the dialer (see DialContext): a name that resolves to
// an allowed address when the request is checked and to a refused one
// when the answer is delivered (DNS rebinding) is still refused.
//
// Set the fields before use and do not change them afterwards.
type HookPolicy struct {
	// Allow opens address ranges that would otherwise be refused, such
	// as 127.0.0.0/8 for callers on the same machine. Allow wins over
	// Deny and over the default refusals.
	Allow []netip.Prefix
	// AllowHosts opens hook host names (compared without case) whatever
	// they resolve to, for names the operator trusts.
	AllowHosts []string
	// Deny refuses address ranges besides the default refusals, such as
	// the bridge's own addresses or a private network.
	Deny []netip.Prefix
}

// AllowHook opens spec, a CIDR prefix ("10.1.0.0/16"), an address
// ("127.0.0.1", "::1") or a host name ("hooks.example.com"), as the
// repeatable --allow-hook flag of acomm bridge does. Errors match
// acomm.ErrInvalidArgument.
func (p *HookPolicy) AllowHook(spec string) error {
	spec = strings.TrimSpace(spec)
	if pfx, err := netip.ParsePrefix(spec); err == nil {
		p.Allow = append(p.Allow, pfx.Masked())
		return nil
	}
	if a, err := netip.ParseAddr(spec); err == nil {
		p.Allow = append(p.Allow, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		return nil
	}
	if !validHostName(spec) {
		return fmt.Errorf("%w: allowed hook %q: want a CIDR prefix, an address or a host name", acomm.ErrInvalidArgument, spec)
	}
	p.AllowHosts = append(p.AllowHosts, strings.ToLower(strings.TrimSuffix(spec, ".")))
	return nil
}

// validHostName reports whether s looks like a DNS host name.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 || strings.HasPrefix(s, ".") || strings.Contains(s, "..") {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
		default:
			return false
		}
	}
	return true
}

// hostAllowed reports whether host is one of AllowHosts.
func (p *HookPolicy) hostAllowed(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, h := range p.AllowHosts {
		if h == host {
			return true
		}
	}
	return false
}

// CheckAddr returns an error matching ErrHookForbidden when the policy
// refuses a delivery to a.
//
// An IPv6 address that spells an IPv4 address, IPv4-mapped
// (::ffff:a.b.c.d), NAT64 (64:ff9b::a.b.c.d, RFC 6052) or IPv4-compatible
// (::a.b.c.d, with a.b.c.d not 0.0.0.0 or 0.0.0.1), is checked as that
// IPv4 address as well as in its own right: Allow or Deny of either form
// applies, and it is refused by default if either form is.
func (p *HookPolicy) CheckAddr(a netip.Addr) error {
	a = a.Unmap()
	v4, embeds := embeddedIPv4(a)
	in := func(pfxs []netip.Prefix) bool {
		for _, pfx := range pfxs {
			if pfx.Contains(a) || embeds && pfx.Contains(v4) {
				return true
			}
		}
		return false
	}
	if in(p.Allow) {
		return nil
	}
	if in(p.Deny) {
		return fmt.Errorf("%w: address %s is denied", ErrHookForbidden, a)
	}
	kind := refusedKind(a)
	if kind == "" && embeds {
		kind = refusedKind(v4)
	}
	if kind == "" {
		return nil
	}
	return fmt.Errorf("%w: %s address %s (see --allow-hook)", ErrHookForbidden, kind, a)
}

// Prefixes of the IPv6 spellings of IPv4 addresses that CheckAddr checks
// as IPv4 (IPv4-mapped ones are unmapped first), and the IPv4 block that
// names this host's network.
var (
	nat64Prefix   = netip.MustParsePrefix("64:ff9b::/96")
	v4CompatLow   = netip.MustParsePrefix("::/96")
	thisNetworkV4 = netip.MustParsePrefix("0.0.0.0/8")
)

// embeddedIPv4 returns the IPv4 address that a, an unmapped address,
// spells in the NAT64 or the IPv4-compatible form. :: and ::1 are the
// IPv6 unspecified and loopback addresses, not IPv4-compatible ones.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || !nat64Prefix.Contains(a) && !v4CompatLow.Contains(a) {
		return netip.Addr{}, false
	}
	if a.IsUnspecified() || a.IsLoopback() {
		return netip.Addr{}, false
	}
	b := a.As16()
	return netip.AddrFrom4([4]byte(b[12:])), true
}

// refusedKind names why a is refused by default, or returns "".
func refusedKind(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsLoopback():
		return "loopback"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return "link-local"
	case a.IsUnspecified(), thisNetworkV4.Contains(a):
		// 0.0.0.0/8 is "this network": Linux dials it as this host.
		return "unspecified"
	case a.IsMulticast():
		return "multicast"
	}
	return ""
}

// checkHost vets a hook's host before anything is dialed: an address
// literal is checked at once, so that the caller learns of the refusal;
// a name is checked when it is dialed.
func (p *HookPolicy) checkHost(host string) error {
	if p.hostAllowed(host) {
		return nil
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return p.CheckAddr(a)
	}
	return nil
}

// hookDialTimeout bounds the connection set-up of a hook delivery.
const hookDialTimeout = 10 * time.Second

// DialContext dials like net.Dialer, refusing, with an error matching
// ErrHookForbidden, every address the policy refuses (other failures
// match acomm.ErrUnreachable): the check runs on
// each address the dialer is about to connect to, after resolution. A
// host in AllowHosts is dialed unchecked. Use it as the DialContext of an
// http.Transport.
func (p *HookPolicy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: hookDialTimeout, KeepAlive: 30 * time.Second}
	if host, _, err := net.SplitHostPort(addr); err != nil || !p.hostAllowed(host) {
		d.ControlContext = p.control
	}
	c, err := d.DialContext(ctx, network, addr)
	if err != nil && !errors.Is(err, ErrHookForbidden) {
		return nil, fmt.Errorf("%w: dial hook %s: %w", acomm.ErrUnreachable, addr, err)
	}
	return c, err
}

// control checks the address a connection is about to be made to.
func (p *HookPolicy) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: cannot check address %q: %w", ErrHookForbidden, address, err)
	}
	return p.CheckAddr(ap.Addr())
}

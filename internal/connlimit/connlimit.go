// Package connlimit bounds the connections a listener holds open. A
// connection beyond the bound is closed as soon as it is accepted, and
// counted, so that no number of clients, slow or idle, can exhaust the
// process's file descriptors or the memory each connection costs.
package connlimit

import (
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics count open and refused connections per listener.
type Metrics struct {
	Open    *prometheus.GaugeVec
	Refused *prometheus.CounterVec
}

// NewMetrics creates and registers the collectors. The "listener" label
// is the name Listen is given: the server's own listeners (http, grpc,
// admin).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "visionserve_connections_open",
			Help: "Connections open now, by listener.",
		}, []string{"listener"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "visionserve_connections_refused_total",
			Help: "Connections closed on arrival because the listener held server.max_connections, by listener.",
		}, []string{"listener"}),
	}
	reg.MustRegister(m.Open, m.Refused)
	return m
}

// Listen returns ln holding at most max connections open at once (max <=
// 0: no bound). name labels its metrics; m may be nil.
func Listen(ln net.Listener, max int, name string, m *Metrics) net.Listener {
	l := &listener{Listener: ln}
	if max > 0 {
		l.slots = make(chan struct{}, max)
	}
	if m != nil {
		l.open, l.refused = m.Open.WithLabelValues(name), m.Refused.WithLabelValues(name)
	}
	return l
}

type listener struct {
	net.Listener
	slots   chan struct{} // nil: no bound
	open    prometheus.Gauge
	refused prometheus.Counter
}

// Accept returns the next connection within the bound; connections
// beyond it are closed here and never returned.
func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.slots != nil {
			select {
			case l.slots <- struct{}{}:
			default:
				// Counted before the close, so that a client which has
				// seen its connection end can already read the count.
				if l.refused != nil {
					l.refused.Inc()
				}
				c.Close()
				continue
			}
		}
		if l.open != nil {
			l.open.Inc()
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// conn gives its slot back when closed, once.
type conn struct {
	net.Conn
	l    *listener
	once sync.Once
}

// Close gives the slot back and uncounts the connection before closing
// it, so that a client which has seen its connection end can connect
// again at once and read the count without it. (A connection accepted in
// that moment may briefly stand beside the one closing: one descriptor
// over the bound, for the length of a close.)
func (c *conn) Close() error {
	c.once.Do(func() {
		if c.l.slots != nil {
			<-c.l.slots
		}
		if c.l.open != nil {
			c.l.open.Dec()
		}
	})
	return c.Conn.Close()
}

// CloseWrite half-closes a TCP connection (net/http uses it to end a
// response before closing).
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

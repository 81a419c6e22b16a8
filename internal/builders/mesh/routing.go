package mesh

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	netv1alpha3 "istio.io/api/networking/v1alpha3"
	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/shopplatform/shop-operator/internal/render"
)

// edgeRoute is one path family the gateway sends to a service.
type edgeRoute struct {
	svc     string
	exact   []string // exact paths
	prefix  []string // path prefixes
	timeout time.Duration
	perTry  time.Duration // per attempt of a retried read
	// retry: reads (GET, HEAD) are retried on 5xx and resets; other
	// methods only when the request never reached the service (connect
	// failure, refused stream). Without retry nothing is retried at all.
	retry bool
}

// edgeRoutes in match order (Istio takes the first match).
var edgeRoutes = []edgeRoute{
	{svc: render.Auth, exact: []string{"/.well-known/jwks.json", "/api/auth"}, prefix: []string{"/api/auth/"}, timeout: 5 * time.Second, perTry: 2 * time.Second, retry: true},
	{svc: render.Catalog, exact: []string{"/api/catalog"}, prefix: []string{"/api/catalog/"}, timeout: 5 * time.Second, perTry: 2 * time.Second, retry: true},
	// A checkout runs the saga (reserve, charge, commit): its budget covers
	// the payment provider's own timeout.
	{svc: render.Orders, exact: []string{"/api/orders"}, prefix: []string{"/api/orders/"}, timeout: 15 * time.Second, perTry: 5 * time.Second, retry: true},
	// Payments are never retried by the mesh: Istio cannot make a retry
	// depend on an Idempotency-Key header, and a charge must not be repeated
	// by anyone but orders, which repeats it with the same key.
	{svc: render.Payment, exact: []string{"/api/payments"}, prefix: []string{"/api/payments/"}, timeout: 10 * time.Second},
	{svc: render.Frontend, prefix: []string{"/"}, timeout: 20 * time.Second, perTry: 5 * time.Second, retry: true},
}

const (
	readRetryOn  = "5xx,reset,connect-failure,refused-stream"
	writeRetryOn = "connect-failure,refused-stream"
)

// host is a service's cluster-local name.
func host(in render.Input, svc string) string {
	return fmt.Sprintf("%s.%s.svc.cluster.local", in.Name(svc), in.Shop.Namespace)
}

func routing(in render.Input) []client.Object {
	out := []client.Object{gateway(in), edgeVirtualService(in), paymentVirtualService(in)}
	for _, svc := range render.Services {
		out = append(out, destinationRule(in, svc))
	}
	return out
}

// gatewayHosts are the Shop's hosts, or every host when it names none.
func gatewayHosts(in render.Input) []string {
	if len(in.Spec.Gateway.Hosts) == 0 {
		return []string{"*"}
	}
	return append([]string(nil), in.Spec.Gateway.Hosts...)
}

func gateway(in render.Input) *networkingv1.Gateway {
	hosts := gatewayHosts(in)
	http := &netv1alpha3.Server{
		Port:  &netv1alpha3.Port{Number: 80, Name: "http", Protocol: "HTTP"},
		Hosts: hosts,
	}
	servers := []*netv1alpha3.Server{http}
	if in.GatewayTLS() {
		http.Tls = &netv1alpha3.ServerTLSSettings{HttpsRedirect: true}
		servers = append(servers, &netv1alpha3.Server{
			Port:  &netv1alpha3.Port{Number: 443, Name: "https", Protocol: "HTTPS"},
			Hosts: hosts,
			// The Secret must live in the ingress gateway's namespace.
			Tls: &netv1alpha3.ServerTLSSettings{
				Mode: netv1alpha3.ServerTLSSettings_SIMPLE, CredentialName: in.Spec.Gateway.TLSSecretName,
				MinProtocolVersion: netv1alpha3.ServerTLSSettings_TLSV1_2,
			},
		})
	}
	g := &networkingv1.Gateway{ObjectMeta: in.ObjectMeta(in.Shop.Name, "gateway")}
	g.Spec = netv1alpha3.Gateway{Selector: in.Spec.Gateway.Istio.GatewaySelector, Servers: servers}
	return g
}

// edgeVirtualService routes the gateway's traffic to the services.
func edgeVirtualService(in render.Input) *networkingv1.VirtualService {
	var routes []*netv1alpha3.HTTPRoute
	for _, r := range edgeRoutes {
		dest := []*netv1alpha3.HTTPRouteDestination{{Destination: &netv1alpha3.Destination{
			Host: host(in, r.svc), Port: &netv1alpha3.PortSelector{Number: render.HTTPPort},
		}}}
		if r.retry {
			// Reads first: they may be retried on server errors.
			routes = append(routes, &netv1alpha3.HTTPRoute{
				Name:    r.svc + "-read",
				Match:   matches(r, &netv1alpha3.StringMatch{MatchType: &netv1alpha3.StringMatch_Regex{Regex: "GET|HEAD"}}),
				Route:   dest,
				Timeout: durationpb.New(r.timeout),
				Retries: &netv1alpha3.HTTPRetry{Attempts: 3, PerTryTimeout: durationpb.New(r.perTry), RetryOn: readRetryOn},
			})
		}
		routes = append(routes, &netv1alpha3.HTTPRoute{
			Name:    r.svc,
			Match:   matches(r, nil),
			Route:   dest,
			Timeout: durationpb.New(r.timeout),
			Retries: writeRetries(r.retry),
		})
	}
	vs := &networkingv1.VirtualService{ObjectMeta: in.ObjectMeta(in.Shop.Name, "gateway")}
	vs.Spec = netv1alpha3.VirtualService{Hosts: gatewayHosts(in), Gateways: []string{in.Shop.Name}, Http: routes}
	return vs
}

func matches(r edgeRoute, method *netv1alpha3.StringMatch) []*netv1alpha3.HTTPMatchRequest {
	var out []*netv1alpha3.HTTPMatchRequest
	for _, p := range r.exact {
		out = append(out, &netv1alpha3.HTTPMatchRequest{Uri: &netv1alpha3.StringMatch{MatchType: &netv1alpha3.StringMatch_Exact{Exact: p}}, Method: method})
	}
	for _, p := range r.prefix {
		out = append(out, &netv1alpha3.HTTPMatchRequest{Uri: &netv1alpha3.StringMatch{MatchType: &netv1alpha3.StringMatch_Prefix{Prefix: p}}, Method: method})
	}
	return out
}

// writeRetries: a write is retried only when it never reached the service;
// noRetries (attempts 0) switches off Istio's default retries, which would
// repeat a request on a 503 whatever its method.
func writeRetries(retry bool) *netv1alpha3.HTTPRetry {
	if !retry {
		return noRetries()
	}
	return &netv1alpha3.HTTPRetry{Attempts: 2, RetryOn: writeRetryOn}
}

func noRetries() *netv1alpha3.HTTPRetry { return &netv1alpha3.HTTPRetry{Attempts: 0} }

// paymentVirtualService switches off retries (and bounds the time) for calls
// to payment inside the mesh: orders' sidecar would otherwise retry a charge
// answered 503 by Istio's default retry policy.
func paymentVirtualService(in render.Input) *networkingv1.VirtualService {
	vs := &networkingv1.VirtualService{ObjectMeta: in.ObjectMeta(in.Name(render.Payment), render.Payment)}
	vs.Spec = netv1alpha3.VirtualService{
		Hosts:    []string{host(in, render.Payment)},
		Gateways: []string{"mesh"},
		Http: []*netv1alpha3.HTTPRoute{{
			Name:    render.Payment,
			Route:   []*netv1alpha3.HTTPRouteDestination{{Destination: &netv1alpha3.Destination{Host: host(in, render.Payment)}}},
			Timeout: durationpb.New(10 * time.Second),
			Retries: noRetries(),
		}},
	}
	return vs
}

// destinationRule: mutual TLS with Istio's certificates, a bounded
// connection pool, and ejection of pods that keep failing (circuit breaking).
func destinationRule(in render.Input, svc string) *networkingv1.DestinationRule {
	dr := &networkingv1.DestinationRule{ObjectMeta: in.ObjectMeta(in.Name(svc), svc)}
	dr.Spec = netv1alpha3.DestinationRule{
		Host: host(in, svc),
		TrafficPolicy: &netv1alpha3.TrafficPolicy{
			Tls: &netv1alpha3.ClientTLSSettings{Mode: netv1alpha3.ClientTLSSettings_ISTIO_MUTUAL},
			ConnectionPool: &netv1alpha3.ConnectionPoolSettings{
				Tcp: &netv1alpha3.ConnectionPoolSettings_TCPSettings{
					MaxConnections: 100,
					ConnectTimeout: durationpb.New(2 * time.Second),
				},
				Http: &netv1alpha3.ConnectionPoolSettings_HTTPSettings{
					Http1MaxPendingRequests: 100,
					Http2MaxRequests:        1000,
					IdleTimeout:             durationpb.New(5 * time.Minute),
				},
			},
			OutlierDetection: &netv1alpha3.OutlierDetection{
				Consecutive_5XxErrors: wrapperspb.UInt32(5),
				Interval:              durationpb.New(10 * time.Second),
				BaseEjectionTime:      durationpb.New(30 * time.Second),
				MaxEjectionPercent:    50,
			},
		},
	}
	if svc == render.Payment {
		dr.Spec.TrafficPolicy.LoadBalancer = paymentAffinity()
	}
	return dr
}

// PaymentUserHeader is the header orders sets to the shopper's user ID on
// every call to payment (services/internal/orders; payment refuses a value
// other than the token's subject).
const PaymentUserHeader = "x-shop-user"

// paymentAffinity sends every request of one user to one payment pod.
// Payment runs without a database: its ledger (charges, refunds,
// idempotency keys) lives in each pod's memory, and a charge, its
// idempotent retry and its refund must meet the same ledger. Locality load
// balancing (on by default when outlier detection is set) is switched off:
// with it, sidecars in different zones would hash over different pods.
func paymentAffinity() *netv1alpha3.LoadBalancerSettings {
	return &netv1alpha3.LoadBalancerSettings{
		LbPolicy: &netv1alpha3.LoadBalancerSettings_ConsistentHash{ConsistentHash: &netv1alpha3.LoadBalancerSettings_ConsistentHashLB{
			HashKey: &netv1alpha3.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName{HttpHeaderName: PaymentUserHeader},
		}},
		LocalityLbSetting: &netv1alpha3.LocalityLoadBalancerSetting{Enabled: wrapperspb.Bool(false)},
	}
}

package exporter

import (
	"fmt"
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// This file writes an OTLP ExportMetricsServiceRequest (protobuf) from what
// a Prometheus Gatherer returns, field by field with protowire, following
// OpenTelemetry's mapping of Prometheus data (the one its Prometheus bridge
// and the collector's Prometheus receiver apply): a counter is a monotonic
// cumulative sum, a gauge or untyped metric a gauge, a summary a summary, a
// classic histogram a cumulative explicit-bucket histogram, a label an
// attribute.
//
// Why not the OpenTelemetry SDK and its OTLP exporters: every package a Go
// binary links runs its init at every start, used or not. otlpmetrichttp and
// otlpmetricgrpc link the generated OTLP protobuf packages, gRPC and
// grpc-gateway (77 package inits, +6.2 MB); the SDK and the bridge alone
// still 18 (semconv tables, resource detectors' regexps, global delegates;
// +2.2 MB). Measured with GODEBUG=inittrace=1 on netdrop --help. protowire
// and client_model are linked already through the Prometheus client, so
// this costs commands that do not push nothing at start-up. Field numbers
// are those of opentelemetry-proto's metrics/v1, common/v1 and resource/v1
// (stable since OTLP 1.0); the tests decode what this writes with the
// generated go.opentelemetry.io/proto/otlp types.

// OTLP field numbers, by message.
const (
	// ExportMetricsServiceRequest
	fReqResourceMetrics protowire.Number = 1
	// ResourceMetrics
	fRMResource     protowire.Number = 1
	fRMScopeMetrics protowire.Number = 2
	// Resource
	fResAttributes protowire.Number = 1
	// ScopeMetrics
	fSMScope   protowire.Number = 1
	fSMMetrics protowire.Number = 2
	// InstrumentationScope
	fScopeName    protowire.Number = 1
	fScopeVersion protowire.Number = 2
	// Metric
	fMetricName        protowire.Number = 1
	fMetricDescription protowire.Number = 2
	fMetricUnit        protowire.Number = 3
	fMetricGauge       protowire.Number = 5
	fMetricSum         protowire.Number = 7
	fMetricHistogram   protowire.Number = 9
	fMetricSummary     protowire.Number = 11
	// Gauge, Sum, Histogram, Summary
	fDataPoints  protowire.Number = 1
	fTemporality protowire.Number = 2
	fMonotonic   protowire.Number = 3
	// NumberDataPoint
	fNDPStartTime  protowire.Number = 2
	fNDPTime       protowire.Number = 3
	fNDPAsDouble   protowire.Number = 4
	fNDPAttributes protowire.Number = 7
	// HistogramDataPoint
	fHDPStartTime  protowire.Number = 2
	fHDPTime       protowire.Number = 3
	fHDPCount      protowire.Number = 4
	fHDPSum        protowire.Number = 5
	fHDPBuckets    protowire.Number = 6
	fHDPBounds     protowire.Number = 7
	fHDPAttributes protowire.Number = 9
	// SummaryDataPoint
	fSDPAttributes protowire.Number = 7
	fSDPStartTime  protowire.Number = 2
	fSDPTime       protowire.Number = 3
	fSDPCount      protowire.Number = 4
	fSDPSum        protowire.Number = 5
	fSDPQuantiles  protowire.Number = 6
	// SummaryDataPoint.ValueAtQuantile
	fQuantile protowire.Number = 1
	fQValue   protowire.Number = 2
	// KeyValue
	fKVKey   protowire.Number = 1
	fKVValue protowire.Number = 2
	// AnyValue
	fAnyString protowire.Number = 1
)

// otlpCumulative is OTLP's AggregationTemporality for a series that counts
// from its start time, as every Prometheus counter does.
const otlpCumulative = 2

// appendMessage appends field num holding the message that body appends.
func appendMessage(b []byte, num protowire.Number, body func([]byte) []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(b, num, protowire.BytesType), body(nil))
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
}

func appendFixed64(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendFixed64(protowire.AppendTag(b, num, protowire.Fixed64Type), v)
}

func appendDouble(b []byte, num protowire.Number, v float64) []byte {
	return appendFixed64(b, num, math.Float64bits(v))
}

func appendVarint(b []byte, num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(b, num, protowire.VarintType), v)
}

// appendTime appends a *_time_unix_nano field; the zero time is absent.
func appendTime(b []byte, num protowire.Number, t time.Time) []byte {
	if t.IsZero() {
		return b
	}
	return appendFixed64(b, num, uint64(t.UnixNano()))
}

// attr is one string attribute: OTLP's KeyValue with a string AnyValue,
// all a Prometheus label or netdrop's resource needs.
type attr struct{ key, value string }

func appendAttrs(b []byte, num protowire.Number, attrs []attr) []byte {
	for _, kv := range attrs {
		b = appendMessage(b, num, func(b []byte) []byte {
			b = appendString(b, fKVKey, kv.key)
			return appendMessage(b, fKVValue, func(b []byte) []byte {
				// An empty string is still a string value, not an
				// empty AnyValue.
				return protowire.AppendString(protowire.AppendTag(b, fAnyString, protowire.BytesType), kv.value)
			})
		})
	}
	return b
}

func appendLabels(b []byte, num protowire.Number, labels []*dto.LabelPair) []byte {
	for _, l := range labels {
		b = appendAttrs(b, num, []attr{{l.GetName(), l.GetValue()}})
	}
	return b
}

// otlpBatch is what one push sends: the resource, the instrumentation
// scope, the families gathered, the time they were read and the time the
// cumulative series started (the pusher's start, as a scrape-based
// receiver would take the first scrape).
type otlpBatch struct {
	resource       []attr
	scope, version string
	families       []*dto.MetricFamily
	now, start     time.Time
}

// marshalOTLP returns the ExportMetricsServiceRequest for the batch, and the
// number of data points in it. A family OTLP cannot carry as is (native
// histograms, which netdrop does not register) is left out and named in
// the error, after the rest is encoded.
func marshalOTLP(in otlpBatch) (b []byte, points int, err error) {
	var skipped []string
	b = appendMessage(nil, fReqResourceMetrics, func(b []byte) []byte {
		b = appendMessage(b, fRMResource, func(b []byte) []byte { return appendAttrs(b, fResAttributes, in.resource) })
		return appendMessage(b, fRMScopeMetrics, func(b []byte) []byte {
			b = appendMessage(b, fSMScope, func(b []byte) []byte {
				b = appendString(b, fScopeName, in.scope)
				return appendString(b, fScopeVersion, in.version)
			})
			for _, mf := range in.families {
				if len(mf.GetMetric()) == 0 {
					continue
				}
				mb, ok := appendFamily(nil, mf, in.now, in.start)
				if !ok {
					skipped = append(skipped, mf.GetName())
					continue
				}
				points += len(mf.GetMetric())
				b = protowire.AppendBytes(protowire.AppendTag(b, fSMMetrics, protowire.BytesType), mb)
			}
			return b
		})
	})
	if len(skipped) > 0 {
		err = fmt.Errorf("not sent over OTLP (native histograms): %v", skipped)
	}
	return b, points, err
}

// appendFamily appends one Metric message's fields; ok is false for a
// family it does not write.
func appendFamily(b []byte, mf *dto.MetricFamily, now, start time.Time) (_ []byte, ok bool) {
	b = appendString(b, fMetricName, mf.GetName())
	b = appendString(b, fMetricDescription, mf.GetHelp())
	b = appendString(b, fMetricUnit, mf.GetUnit())
	at := func(m *dto.Metric) time.Time {
		if ms := m.GetTimestampMs(); ms != 0 {
			return time.UnixMilli(ms)
		}
		return now
	}
	since := func(created *timestamppb.Timestamp) time.Time {
		if created.IsValid() {
			return created.AsTime()
		}
		return start
	}
	number := func(b []byte, m *dto.Metric, started time.Time, v float64) []byte {
		return appendMessage(b, fDataPoints, func(b []byte) []byte {
			b = appendTime(b, fNDPStartTime, started)
			b = appendTime(b, fNDPTime, at(m))
			b = appendDouble(b, fNDPAsDouble, v)
			return appendLabels(b, fNDPAttributes, m.GetLabel())
		})
	}
	switch mf.GetType() {
	case dto.MetricType_GAUGE, dto.MetricType_UNTYPED:
		return appendMessage(b, fMetricGauge, func(b []byte) []byte {
			for _, m := range mf.GetMetric() {
				v := m.GetGauge().GetValue()
				if mf.GetType() == dto.MetricType_UNTYPED {
					v = m.GetUntyped().GetValue()
				}
				b = number(b, m, time.Time{}, v)
			}
			return b
		}), true
	case dto.MetricType_COUNTER:
		return appendMessage(b, fMetricSum, func(b []byte) []byte {
			for _, m := range mf.GetMetric() {
				c := m.GetCounter()
				b = number(b, m, since(c.GetCreatedTimestamp()), c.GetValue())
			}
			b = appendVarint(b, fTemporality, otlpCumulative)
			return appendVarint(b, fMonotonic, 1)
		}), true
	case dto.MetricType_SUMMARY:
		return appendMessage(b, fMetricSummary, func(b []byte) []byte {
			for _, m := range mf.GetMetric() {
				s := m.GetSummary()
				b = appendMessage(b, fDataPoints, func(b []byte) []byte {
					b = appendTime(b, fSDPStartTime, since(s.GetCreatedTimestamp()))
					b = appendTime(b, fSDPTime, at(m))
					b = appendFixed64(b, fSDPCount, s.GetSampleCount())
					b = appendDouble(b, fSDPSum, s.GetSampleSum())
					for _, q := range s.GetQuantile() {
						b = appendMessage(b, fSDPQuantiles, func(b []byte) []byte {
							b = appendDouble(b, fQuantile, q.GetQuantile())
							return appendDouble(b, fQValue, q.GetValue())
						})
					}
					return appendLabels(b, fSDPAttributes, m.GetLabel())
				})
			}
			return b
		}), true
	case dto.MetricType_HISTOGRAM:
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h.GetSchema() != 0 || h.GetZeroThreshold() > 0 || len(h.GetPositiveSpan())+len(h.GetNegativeSpan()) > 0 {
				return b, false
			}
		}
		return appendMessage(b, fMetricHistogram, func(b []byte) []byte {
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				b = appendMessage(b, fDataPoints, func(b []byte) []byte {
					b = appendTime(b, fHDPStartTime, since(h.GetCreatedTimestamp()))
					b = appendTime(b, fHDPTime, at(m))
					b = appendFixed64(b, fHDPCount, h.GetSampleCount())
					b = appendDouble(b, fHDPSum, h.GetSampleSum())
					// Prometheus buckets are cumulative and may end
					// with +Inf; OTLP's are per bucket, with one more
					// count than bounds (the last up to +Inf).
					var counts, bounds []byte
					var prev uint64
					for _, bk := range h.GetBucket() {
						if math.IsInf(bk.GetUpperBound(), +1) {
							continue
						}
						counts = protowire.AppendFixed64(counts, bk.GetCumulativeCount()-prev)
						bounds = protowire.AppendFixed64(bounds, math.Float64bits(bk.GetUpperBound()))
						prev = bk.GetCumulativeCount()
					}
					counts = protowire.AppendFixed64(counts, h.GetSampleCount()-prev)
					b = protowire.AppendBytes(protowire.AppendTag(b, fHDPBuckets, protowire.BytesType), counts)
					if len(bounds) > 0 {
						b = protowire.AppendBytes(protowire.AppendTag(b, fHDPBounds, protowire.BytesType), bounds)
					}
					return appendLabels(b, fHDPAttributes, m.GetLabel())
				})
			}
			return appendVarint(b, fTemporality, otlpCumulative)
		}), true
	}
	return b, false
}

// otlpResponse is what an OTLP/HTTP receiver answers: on success an
// ExportMetricsServiceResponse whose partial_success says how many points
// it rejected and why; on failure a google.rpc.Status whose message says
// why.
type otlpResponse struct {
	rejected int64
	message  string
}

// parsePartialSuccess reads ExportMetricsServiceResponse.partial_success
// (field 1: rejected_data_points = 1, error_message = 2).
func parsePartialSuccess(b []byte) (otlpResponse, error) {
	var r otlpResponse
	ps, err := findBytes(b, 1)
	if err != nil || ps == nil {
		return r, err
	}
	for len(ps) > 0 {
		num, typ, n := protowire.ConsumeTag(ps)
		if n < 0 {
			return r, protowire.ParseError(n)
		}
		ps = ps[n:]
		switch {
		case num == 1 && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(ps)
			if m < 0 {
				return r, protowire.ParseError(m)
			}
			r.rejected, ps = int64(v), ps[m:]
		case num == 2 && typ == protowire.BytesType:
			v, m := protowire.ConsumeString(ps)
			if m < 0 {
				return r, protowire.ParseError(m)
			}
			r.message, ps = v, ps[m:]
		default:
			m := protowire.ConsumeFieldValue(num, typ, ps)
			if m < 0 {
				return r, protowire.ParseError(m)
			}
			ps = ps[m:]
		}
	}
	return r, nil
}

// statusMessage reads google.rpc.Status.message (field 2), the reason an
// OTLP/HTTP receiver gives with an error status.
func statusMessage(b []byte) string {
	m, err := findBytes(b, 2)
	if err != nil {
		return ""
	}
	return string(m)
}

// findBytes returns the last length-delimited field num of message b (nil
// when absent).
func findBytes(b []byte, want protowire.Number) ([]byte, error) {
	var found []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == want && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			found, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		b = b[m:]
	}
	return found, nil
}

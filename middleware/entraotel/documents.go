package entraotel

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/entragate/entragate/middleware"
)

// documentKey names a metadata document and its key set.
type documentKey struct{ authority, document string }

// documentState is what the gauges report of a document.
type documentState struct {
	lastSuccess float64 // Unix seconds; 0 before the first success
	keys        int64
}

func documentOf(e middleware.LoadEvent) documentKey {
	doc := "v" + e.Version
	if e.Policy != "" {
		doc = e.Policy
	}
	return documentKey{authority: e.Authority, document: doc}
}

func (k documentKey) attributes() []attribute.KeyValue {
	return []attribute.KeyValue{AttrAuthority.String(k.authority), AttrDocument.String(k.document)}
}

func (in *Instruments) createDocumentInstruments() error {
	var err, e error
	in.loads, e = in.meter.Int64Counter("entragate.key_document.loads", metric.WithUnit("{load}"),
		metric.WithDescription("Loads of a metadata document and its key set, by document and result (success, failure)."))
	err = errors.Join(err, e)
	in.loadDuration, e = in.meter.Float64Histogram("entragate.key_document.load.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a load of a metadata document and its key set took (two HTTP requests)."),
		metric.WithExplicitBucketBoundaries(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
	err = errors.Join(err, e)
	lastSuccess, e := in.meter.Float64ObservableGauge("entragate.key_document.last_success", metric.WithUnit("s"),
		metric.WithDescription("When a document's keys last loaded, as a Unix time: time() minus it is the age of the keys."))
	err = errors.Join(err, e)
	keys, e := in.meter.Int64ObservableGauge("entragate.key_document.keys", metric.WithUnit("{key}"),
		metric.WithDescription("Signing keys a document's key set holds."))
	if err = errors.Join(err, e); err != nil {
		return err
	}
	_, err = in.meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		in.docsMu.Lock()
		defer in.docsMu.Unlock()
		for k, st := range in.docs {
			opt := metric.WithAttributes(k.attributes()...)
			if st.lastSuccess > 0 {
				o.ObserveFloat64(lastSuccess, st.lastSuccess, opt)
			}
			o.ObserveInt64(keys, st.keys, opt)
		}
		return nil
	}, lastSuccess, keys)
	return err
}

// load records one load of a document (a rare event: no options cached).
func (in *Instruments) load(e middleware.LoadEvent) {
	k := documentOf(e)
	result := "success"
	if e.Err != nil {
		result = "failure"
	}
	attrs := metric.WithAttributes(append(k.attributes(), AttrResult.String(result))...)
	in.loads.Add(context.Background(), 1, attrs)
	in.loadDuration.Record(context.Background(), e.Duration.Seconds(), attrs)
	in.docsMu.Lock()
	defer in.docsMu.Unlock()
	st := in.docs[k]
	if e.Err == nil {
		st.lastSuccess = float64(e.Start.Add(e.Duration).UnixNano()) / 1e9
		st.keys = int64(e.Keys)
	}
	in.docs[k] = st
}

//! One trace from `POST /v1/orders` through the saga, both gRPC calls, the outbox relay and both
//! consumers, as a trace backend receives it over OTLP: the spans' names, kinds, semantic-
//! convention attributes and parent links.

use std::time::Duration;

use longship_testkit::otlp::{ReceivedSpan, TraceReceiver};

use crate::harness::{Platform, order_body};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// The caller's span (the client of `POST /v1/orders`).
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The one span of `spans` that `matches`, failing with what was received.
fn one<'a>(
    spans: &'a [ReceivedSpan],
    what: &str,
    matches: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| matches(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: {} spans match in {spans:#?}",
        found.len()
    );
    found[0]
}

fn assert_child(child: &ReceivedSpan, parent: &ReceivedSpan) {
    assert_eq!(
        child.parent_span_id, parent.span_id,
        "{} ({}) should be a child of {} ({})",
        child.name, child.kind, parent.name, parent.kind
    );
}

fn step<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    one(spans, name, |s| {
        s.name == "saga.step"
            && s.attribute("step") == Some(name)
            && s.attribute("phase") == Some("action")
    })
}

/// The CLIENT span of `method` and the SERVER span answering it.
fn rpc<'a>(
    spans: &'a [ReceivedSpan],
    service: &str,
    method: &str,
) -> (&'a ReceivedSpan, &'a ReceivedSpan) {
    let name = format!("{service}/{method}");
    let of_kind = |kind: &'static str| {
        one(spans, &format!("{kind} {name}"), |s| {
            s.kind == kind && s.name == name
        })
    };
    let (client, server) = (of_kind("CLIENT"), of_kind("SERVER"));
    for span in [client, server] {
        assert_eq!(span.attribute("rpc.system"), Some("grpc"), "{span:?}");
        assert_eq!(span.attribute("rpc.service"), Some(service), "{span:?}");
        assert_eq!(span.attribute("rpc.method"), Some(method), "{span:?}");
        assert_eq!(
            span.attribute("rpc.grpc.status_code"),
            Some("0"),
            "{span:?}"
        );
    }
    assert_child(server, client);
    (client, server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_order_is_one_trace_of_server_client_producer_and_consumer_spans() {
    let receiver = TraceReceiver::start().await;
    longship_telemetry::init_for_tests_exporting_to(&receiver.endpoint())
        .expect("the first telemetry of this test process (nextest runs each test alone)");
    let p = Platform::start().await;
    p.seed_product("acme", "SKU-T", 100, "USD", 10).await;
    p.seed_account("acme", "c-t", 10_000, "USD").await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let r = p
        .orders("acme")
        .send_json(
            http::Method::POST,
            "/v1/orders",
            &[("traceparent", traceparent.as_str())],
            &order_body("c-t", "USD", &[("SKU-T", 1)]),
        )
        .await
        .expect("post");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(
        p.wait_final("acme", &id, Duration::from_secs(15)).await["status"],
        "CONFIRMED"
    );

    let consumers = ["inventory-order-confirmed", "payment-order-confirmed"];
    let received = receiver
        .wait_for(Duration::from_secs(20), |spans| {
            consumers.iter().all(|c| {
                spans.iter().any(|s| {
                    s.trace_id == TRACE_ID
                        && s.kind == "CONSUMER"
                        && s.attribute("messaging.consumer.group.name") == Some(c)
                })
            })
        })
        .await;
    let all = match received {
        Ok(spans) => spans,
        Err(spans) => panic!("the consumers' spans never arrived; received: {spans:#?}"),
    };
    let spans: Vec<ReceivedSpan> = all
        .iter()
        .filter(|s| s.trace_id == TRACE_ID)
        .cloned()
        .collect();

    for span in &spans {
        eprintln!(
            "{} {} <- {} {:8} {}",
            span.trace_id, span.span_id, span.parent_span_id, span.kind, span.name
        );
    }

    // the HTTP request: a SERVER span continuing the caller's trace
    let request = one(&spans, "SERVER POST /v1/orders", |s| {
        s.kind == "SERVER" && s.name == "POST /v1/orders"
    });
    assert_eq!(request.parent_span_id, CALLER_SPAN);
    assert_eq!(request.attribute("http.request.method"), Some("POST"));
    assert_eq!(request.attribute("http.route"), Some("/v1/orders"));
    assert_eq!(request.attribute("url.path"), Some("/v1/orders"));
    assert_eq!(request.attribute("http.response.status_code"), Some("202"));

    // the saga and its steps, then each participant's call: CLIENT in order, SERVER in the peer
    let saga = one(&spans, "saga.run", |s| s.name == "saga.run");
    assert_eq!(saga.kind, "INTERNAL");
    assert_child(saga, request);
    let (reserve, _) = rpc(&spans, "longship.inventory.v1.InventoryService", "Reserve");
    let reserve_step = step(&spans, "ReserveStock");
    assert_child(reserve_step, saga);
    assert_child(reserve, reserve_step);
    let (authorize, _) = rpc(&spans, "longship.payment.v1.PaymentService", "Authorize");
    let authorize_step = step(&spans, "AuthorizePayment");
    assert_child(authorize_step, saga);
    assert_child(authorize, authorize_step);

    messaging_spans(&spans, &consumers);

    // probes and scrapes are not traced (the harness polled /readyz of every service)
    let probes: Vec<&ReceivedSpan> = all
        .iter()
        .filter(|s| {
            s.attribute("url.path")
                .is_some_and(|p| ["/healthz", "/readyz", "/metrics"].contains(&p))
        })
        .collect();
    assert!(probes.is_empty(), "probes were traced: {probes:#?}");
    p.stop().await;
}

/// The relay's publish of order_confirmed: a PRODUCER span, child of the step that wrote it; both
/// consumers: CONSUMER spans, children of the producer span, of the same message.
fn messaging_spans(spans: &[ReceivedSpan], consumers: &[&str]) {
    let confirm_step = step(spans, "ConfirmOrder");
    let publish = one(spans, "PRODUCER order_confirmed", |s| {
        s.kind == "PRODUCER"
            && s.attribute("messaging.destination.name")
                .is_some_and(|d| d.ends_with("orders.v1.order_confirmed"))
    });
    assert_child(publish, confirm_step);
    let subject = publish
        .attribute("messaging.destination.name")
        .unwrap_or("");
    assert_eq!(publish.name, format!("send {subject}"));
    assert_eq!(publish.attribute("messaging.system"), Some("nats"));
    assert_eq!(publish.attribute("messaging.operation.type"), Some("send"));
    let event_id = publish.attribute("messaging.message.id").unwrap_or("");
    assert_eq!(event_id.len(), 36, "{publish:?}");

    // both consumers: CONSUMER spans, children of the producer span, of the same message
    for &consumer in consumers {
        let handled = one(spans, consumer, |s| {
            s.kind == "CONSUMER" && s.attribute("messaging.consumer.group.name") == Some(consumer)
        });
        assert_child(handled, publish);
        assert_eq!(handled.name, format!("process {subject}"));
        assert_eq!(handled.attribute("messaging.system"), Some("nats"));
        assert_eq!(
            handled.attribute("messaging.operation.type"),
            Some("process")
        );
        assert_eq!(
            handled.attribute("messaging.destination.name"),
            Some(subject)
        );
        assert_eq!(handled.attribute("messaging.message.id"), Some(event_id));
    }
}

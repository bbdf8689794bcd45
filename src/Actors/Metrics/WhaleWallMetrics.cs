using Prometheus;

namespace WhaleWall.Actors.Metrics;

/// <summary>Every metric WhaleWall exports, in one place (README "Metrics"). Label values are
/// bounded: container id/name/image/compose labels (each cut to
/// <see cref="MetricLabel.MaxLength"/> characters by <see cref="MetricLabel.Bound"/>), Docker
/// event types, set names, states; never addresses or host names.</summary>
public static class WhaleWallMetrics
{
    /// <summary>Labels of the per-container series.</summary>
    public static readonly string[] ContainerLabels = ["id", "name", "image", "compose_project", "compose_service"];

    // ---- per container, from the kernel's per-element counters, read at scrape time
    public static readonly Counter ContainerPackets = Prometheus.Metrics.CreateCounter("whalewall_container_packets_total",
        "Packets WhaleWall decided on, per container, direction (egress|ingress) and verdict (accept|drop|audit_drop). " +
        "Accepted counts the packets that opened a flow (established traffic is accepted before the lookups); dropped counts every dropped packet; " +
        "audit_drop counts the packets an audited container's policy would have dropped (they passed).",
        new CounterConfiguration { LabelNames = ["direction", "verdict", .. ContainerLabels] });

    public static readonly Counter ContainerBytes = Prometheus.Metrics.CreateCounter("whalewall_container_bytes_total",
        "Bytes of the packets counted by whalewall_container_packets_total.",
        new CounterConfiguration { LabelNames = ["direction", "verdict", .. ContainerLabels] });

    /// <summary>dockerwall's names, so existing dashboards keep working: egress only, action accept|drop.</summary>
    public static readonly Counter DockerwallPackets = Prometheus.Metrics.CreateCounter("dockerwall_container_packets",
        "dockerwall-compatible: packets originated by a container (egress), by action (accept|drop).",
        new CounterConfiguration { LabelNames = ["id", "name", "image", "action"] });

    public static readonly Counter DockerwallBytes = Prometheus.Metrics.CreateCounter("dockerwall_container_bytes",
        "dockerwall-compatible: bytes originated by a container (egress), by action (accept|drop).",
        new CounterConfiguration { LabelNames = ["id", "name", "image", "action"] });

    // ---- the daemon
    public static readonly Counter DockerEvents = Prometheus.Metrics.CreateCounter("whalewall_docker_events_total",
        "Docker events received, by type and action.",
        new CounterConfiguration { LabelNames = ["type", "action"] });

    public static readonly Histogram DockerEventDelay = Prometheus.Metrics.CreateHistogram("whalewall_docker_event_delay_seconds",
        "From a Docker event's own timestamp (dockerd's clock, this host) to WhaleWall's receipt of it: the event stream's delivery.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    public static readonly Histogram DockerApiSeconds = Prometheus.Metrics.CreateHistogram("whalewall_docker_api_seconds",
        "Duration of one Docker API call, answered or failed, by call (container_list|container_inspect|network_list|network_inspect).",
        new HistogramConfiguration { LabelNames = ["call"], Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    public static readonly Histogram EventToEnforced = Prometheus.Metrics.CreateHistogram("whalewall_event_to_enforced_seconds",
        "From a Docker event's receipt to the kernel holding the container's rules (writer's Applied).",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    public static readonly Histogram WriterProgramSeconds = Prometheus.Metrics.CreateHistogram("whalewall_writer_program_seconds",
        "From the writer's receipt of a container's rules to its Applied: waiting behind other work, the transaction, cutting stale flows.",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0005, 2, 16) });

    public static readonly Histogram NftTransactionSeconds = Prometheus.Metrics.CreateHistogram("whalewall_nft_transaction_seconds",
        "Duration of one libnftables transaction, by kind (startup|changes|single).",
        new HistogramConfiguration { LabelNames = ["kind"], Buckets = Histogram.ExponentialBuckets(0.0002, 2, 16) });

    public static readonly Histogram NftTransactionSize = Prometheus.Metrics.CreateHistogram("whalewall_nft_transaction_elements",
        "Set elements and chains added or deleted by one libnftables transaction, by kind.",
        new HistogramConfiguration { LabelNames = ["kind"], Buckets = Histogram.ExponentialBuckets(1, 4, 9) });

    public static readonly Counter NftTransactionFailures = Prometheus.Metrics.CreateCounter("whalewall_nft_transaction_failures_total",
        "libnftables transactions the kernel rejected, by kind.",
        new CounterConfiguration { LabelNames = ["kind"] });

    public static readonly Gauge Containers = Prometheus.Metrics.CreateGauge("whalewall_containers",
        "Containers known to the daemon, by state (unmanaged|enforced|fail_closed|rejected|unfilterable).",
        new GaugeConfiguration { LabelNames = ["state"] });

    public static readonly Gauge ManagedContainers = Prometheus.Metrics.CreateGauge("whalewall_managed_containers",
        "Containers under WhaleWall's policy (enforced, fail-closed, rejected or unfilterable).");

    public static readonly Counter LabelErrors = Prometheus.Metrics.CreateCounter("whalewall_label_errors_total",
        "Errors found in containers' labels (each makes its container fail closed).");

    public static readonly Gauge SetElements = Prometheus.Metrics.CreateGauge("whalewall_set_elements",
        "Elements WhaleWall holds in each set or verdict map of its table.",
        new GaugeConfiguration { LabelNames = ["set"] });

    public static readonly Gauge AuditContainers = Prometheus.Metrics.CreateGauge("whalewall_audit_containers",
        "Managed containers in audit mode (whalewall.mode=audit or WHALEWALL_MODE=audit): nothing of theirs is dropped.");

    public static readonly Counter FlowEvents = Prometheus.Metrics.CreateCounter("whalewall_flow_events_total",
        "New flows seen from conntrack for learning containers, by outcome (recorded|audit_drop|overflow|lost).",
        new CounterConfiguration { LabelNames = ["outcome"] });

    public static readonly Gauge DockerConnected = Prometheus.Metrics.CreateGauge("whalewall_docker_stream_connected",
        "1 while the Docker event stream is connected.");

    public static readonly Gauge TableReady = Prometheus.Metrics.CreateGauge("whalewall_table_ready",
        "1 once the start-up table is in the kernel.");

    public static readonly Gauge WriterRetrying = Prometheus.Metrics.CreateGauge("whalewall_writer_retrying_owners",
        "Containers whose rules the kernel refused: drop-all while the writer retries them with backoff.");

    public static readonly Counter WriterResyncs = Prometheus.Metrics.CreateCounter("whalewall_writer_resyncs_total",
        "Times the writer rebuilt the whole table in one transaction to heal it (a removal the kernel refused, an internal error), by reason.",
        new CounterConfiguration { LabelNames = ["reason"] });

    public static readonly Gauge Healthy = Prometheus.Metrics.CreateGauge("whalewall_healthy",
        "1 while /healthz answers 200 (table in place, Docker connected, no component failing past its grace).");

    public static readonly Gauge ComponentProblem = Prometheus.Metrics.CreateGauge("whalewall_component_problem",
        "1 while a component reports a problem (writer, store, bridge-netfilter, sandbox), grace or not.",
        new GaugeConfiguration { LabelNames = ["component"] });

    public static readonly Gauge ScrapeKernelSeconds = Prometheus.Metrics.CreateGauge("whalewall_scrape_kernel_seconds",
        "Time the last scrape spent reading and attributing the kernel's counters.");

    /// <summary>Creates the labelled series that exist before anything happened (a failure
    /// counter at 0 is a series too), so dashboards find them from the start.</summary>
    /// <summary>DNS proxy queries per container (docs/dns-proxy.md): outcome allowed, refused,
    /// rate_limited, failed or unknown_source (a source that is no proxied container: id and
    /// name empty).</summary>
    public static readonly Counter DnsQueries = Prometheus.Metrics.CreateCounter("whalewall_dns_queries_total",
        "DNS queries through the proxy, by container and outcome", new CounterConfiguration { LabelNames = ["id", "name", "outcome"] });

    /// <summary>What the proxy adds to an allowed answer: its own work plus the wait for the
    /// kernel commit of the learned addresses (total minus the upstream's time).</summary>
    public static readonly Histogram DnsProxyAdded = Prometheus.Metrics.CreateHistogram("whalewall_dns_proxy_added_seconds",
        "Time the DNS proxy adds to an allowed answer (its own work and the kernel commit), excluding the upstream's time",
        new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.0001, 2, 16) });

    public static readonly string[] DnsOutcomes = ["allowed", "refused", "rate_limited", "failed", "unknown_source", "audit_refused"];

    public static void Initialize()
    {
        DnsQueries.WithLabels("", "", "unknown_source");
        foreach (var outcome in new[] { "recorded", "audit_drop", "overflow", "lost" }) FlowEvents.WithLabels(outcome);
        foreach (var kind in new[] { "startup", "changes", "single", "resync" })
        {
            NftTransactionSeconds.WithLabels(kind);
            NftTransactionSize.WithLabels(kind);
            NftTransactionFailures.WithLabels(kind);
        }
        foreach (var reason in new[] { "refused_removal", "refused_fallback", "error" }) WriterResyncs.WithLabels(reason);
        foreach (var state in new[] { "unmanaged", "enforced", "fail_closed", "rejected", "unfilterable" }) Containers.WithLabels(state);
    }

    public static string StateLabel(WhaleWall.Actors.Containers.ContainerState state) => state switch
    {
        WhaleWall.Actors.Containers.ContainerState.Enforced => "enforced",
        WhaleWall.Actors.Containers.ContainerState.FailClosed => "fail_closed",
        WhaleWall.Actors.Containers.ContainerState.Rejected => "rejected",
        WhaleWall.Actors.Containers.ContainerState.Gone => "gone",
        WhaleWall.Actors.Containers.ContainerState.Unfilterable => "unfilterable",
        _ => "unmanaged",
    };

    /// <summary>Docker's action without its arguments ("exec_start: sh -c ..." -> "exec_start").</summary>
    public static string ActionLabel(string action)
    {
        var colon = action.IndexOf(':');
        return colon < 0 ? action : action[..colon];
    }
}

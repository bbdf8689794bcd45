using System.Collections.Concurrent;
using WhaleWall.Actors.Metrics;
using WhaleWall.DnsProxy;
using WhaleWall.Firewall;

namespace WhaleWall.Host.Metrics;

/// <summary>The DNS proxy's answers as metrics and log lines: queries per container and outcome,
/// the time the proxy adds to allowed answers, and each refusal explained (at most
/// <see cref="LogBurst"/> lines per <see cref="LogWindow"/>, then a count of the rest: a
/// container can ask as fast as its rate limit lets it). A container's series go with it.</summary>
public sealed class DnsProxyMetrics(DaemonView view, Action<string> log, TimeProvider? time = null) : IDnsProxyObserver
{
    public const int LogBurst = 20;
    public static readonly TimeSpan LogWindow = TimeSpan.FromSeconds(10);

    private readonly TimeProvider time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, string> names = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private readonly LogBudget budget = new(LogBurst, LogWindow);

    /// <summary>Where released answers go (the flow recorder names destinations with them).</summary>
    public Action<WhaleWall.Actors.Flows.FlowCommands.Resolved>? OnResolved { get; set; }

    public void Resolved(string containerId, string name, IReadOnlyList<(System.Net.IPAddress Address, TimeSpan Ttl)> addresses) =>
        OnResolved?.Invoke(new WhaleWall.Actors.Flows.FlowCommands.Resolved(containerId, name, addresses));

    public void Answered(string? containerId, ProxyOutcome outcome, TimeSpan total, TimeSpan upstream, string? reason)
    {
        var id = containerId ?? "";
        var name = id.Length == 0 ? "" : names.GetOrAdd(id, NameOf);
        WhaleWallMetrics.DnsQueries.WithLabels(id, name, Label(outcome)).Inc();
        if (outcome is ProxyOutcome.Allowed or ProxyOutcome.AuditRefused)
            WhaleWallMetrics.DnsProxyAdded.Observe(Math.Max(0, (total - upstream).TotalSeconds));
        if (outcome != ProxyOutcome.Allowed && reason is not null)
            Log($"DNS proxy: {(id.Length == 0 ? "" : $"{name} ({id[..Math.Min(12, id.Length)]}): ")}{Label(outcome).Replace('_', ' ')}: {SafeText.Escape(reason, 300)}");
    }

    /// <summary>The container is gone: its series go too (container churn must not grow every scrape).</summary>
    public void Forget(string containerId)
    {
        if (!names.TryRemove(containerId, out var name)) return;
        foreach (var outcome in WhaleWallMetrics.DnsOutcomes)
            WhaleWallMetrics.DnsQueries.RemoveLabelled(containerId, name, outcome);
    }

    public static string Label(ProxyOutcome outcome) => outcome switch
    {
        ProxyOutcome.Allowed => "allowed",
        ProxyOutcome.Refused => "refused",
        ProxyOutcome.RateLimited => "rate_limited",
        ProxyOutcome.Failed => "failed",
        ProxyOutcome.AuditRefused => "audit_refused",
        _ => "unknown_source",
    };

    private string NameOf(string id) =>
        MetricLabel.Bound(view.Current.Containers.TryGetValue(id, out var c) ? c.Name : "");

    private void Log(string line)
    {
        bool admitted;
        int heldBack;
        lock (gate) admitted = budget.Admit(time.GetUtcNow(), out heldBack);
        if (heldBack > 0) log($"DNS proxy: {heldBack} more refused or failed queries in {LogWindow.TotalSeconds:F0} s not logged (whalewall_dns_queries_total counts them all)");
        if (admitted) log(line);
    }
}

using System.Collections.Immutable;
using System.Net;
using WhaleWall.Actors.Containers;
using WhaleWall.Actors.Health;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Actors.Metrics;

/// <summary>A container as the daemon holds it: its facts, its state and why.</summary>
public sealed record ContainerEntry(string Id, ContainerFacts? Facts, ContainerState State, ImmutableArray<string> Reasons = default)
{
    public string ShortId => Id.Length > 12 ? Id[..12] : Id;
    public string Name => Facts?.Name ?? "";
    public string Image => Facts?.Image ?? "";
    public string ComposeProject => Facts?.ComposeProject ?? "";
    public string ComposeService => Facts?.ComposeService ?? "";
    public ImmutableArray<string> ReasonsOrEmpty => Reasons.IsDefault ? [] : Reasons;
    public Firewall.Decide.PolicyMode Mode { get; init; }
    public bool Learn { get; init; }
    public bool Audited => Mode == Firewall.Decide.PolicyMode.Audit && State != ContainerState.Unmanaged;
}

/// <summary>A component's problem, and since when it has had one (without a break).</summary>
public sealed record ComponentProblem(string Problem, DateTimeOffset Since);

/// <summary>What `/healthz` answers: <paramref name="Problems"/> make it 503; <paramref name="Pending"/>
/// are problems still within their grace.</summary>
public sealed record HealthReport(bool Healthy, ImmutableArray<string> Problems, ImmutableArray<string> Pending);

/// <summary>What the daemon knows, as immutable snapshots that the HTTP thread reads while the
/// <see cref="MetricsActor"/> (the only writer) replaces them. Pure apart from the one volatile
/// field; time is always passed in.</summary>
public sealed class DaemonView
{
    /// <summary>How long the store may fail before the daemon is unhealthy: a database restart or
    /// a short network cut is ridden out (the kernel is programmed without waiting for it).</summary>
    public static readonly TimeSpan StoreGrace = TimeSpan.FromSeconds(30);

    /// <summary>Grace per component: only the store has one; the writer reports "stuck" itself,
    /// and bridge netfilter or a missing sandbox are wrong at once.</summary>
    public static TimeSpan GraceOf(string component) =>
        component == HealthNotices.Components.Store ? StoreGrace : TimeSpan.Zero;

    private volatile Snapshot current = new(ImmutableDictionary<string, ContainerEntry>.Empty,
        ImmutableDictionary<IPAddress, string>.Empty, false, false, null, ImmutableSortedDictionary<string, ComponentProblem>.Empty);

    public sealed record Snapshot(
        ImmutableDictionary<string, ContainerEntry> Containers,
        ImmutableDictionary<IPAddress, string> Owners,
        bool TableReady,
        bool DockerConnected,
        string? DockerError,
        ImmutableSortedDictionary<string, ComponentProblem> Components)
    {
        /// <summary>Healthy when the table is in place, Docker's stream is connected and no
        /// component has had a problem for longer than its grace; every problem is listed.</summary>
        public HealthReport Health(DateTimeOffset now)
        {
            var problems = ImmutableArray.CreateBuilder<string>();
            var pending = ImmutableArray.CreateBuilder<string>();
            if (!TableReady) problems.Add("table: the start-up table is not in the kernel yet");
            if (!DockerConnected) problems.Add("docker: event stream not connected" + (DockerError is { } e ? $" ({Decision.Escape(e)})" : ""));
            foreach (var (component, p) in Components)
            {
                var failing = now - p.Since;
                var line = $"{component}: {Decision.Escape(p.Problem)} (since {p.Since:yyyy-MM-ddTHH:mm:ssZ}, {Seconds(failing)})";
                if (failing >= GraceOf(component)) problems.Add(line);
                else pending.Add($"{line}; unhealthy after {Seconds(GraceOf(component))}");
            }
            return new HealthReport(problems.Count == 0, problems.ToImmutable(), pending.ToImmutable());
        }

        private static string Seconds(TimeSpan t) => $"{Math.Max(0, (int)t.TotalSeconds)} s";
    }

    public Snapshot Current => current;

    /// <summary>Replaces the snapshot; one writer at a time (the <see cref="MetricsActor"/>).</summary>
    public void Update(Func<Snapshot, Snapshot> change) => current = change(current);

    /// <summary>A container's new state (or its removal). Only its own addresses are touched.</summary>
    public void Apply(ContainerNotices.StateChanged m) => Update(s =>
    {
        var owners = s.Owners;
        if (s.Containers.TryGetValue(m.Id, out var old))
            foreach (var address in OwnersOf([old]).Keys)
                if (owners.TryGetValue(address, out var id) && id == m.Id) owners = owners.Remove(address);
        if (m.State == ContainerState.Gone) return s with { Containers = s.Containers.Remove(m.Id), Owners = owners };
        var entry = new ContainerEntry(m.Id, m.Facts, m.State, m.ReasonsOrEmpty) { Mode = m.Mode, Learn = m.Learn };
        return s with { Containers = s.Containers.SetItem(m.Id, entry), Owners = owners.SetItems(OwnersOf([entry])) };
    });

    /// <summary>A component's health: a problem keeps the time it began while it lasts (its text
    /// may change), null clears it.</summary>
    public void Apply(HealthNotices.ComponentHealth m, DateTimeOffset now) => Update(s => s with
    {
        Components = m.Problem is null
            ? s.Components.Remove(m.Component)
            : s.Components.SetItem(m.Component, new ComponentProblem(m.Problem,
                s.Components.TryGetValue(m.Component, out var old) ? old.Since : now)),
    });

    /// <summary>Address -> container id, from the containers' own addresses (those that can be
    /// in the sets: not an overlay's, a macvlan's or the host's).</summary>
    internal static ImmutableDictionary<IPAddress, string> OwnersOf(IEnumerable<ContainerEntry> containers)
    {
        var owners = ImmutableDictionary.CreateBuilder<IPAddress, string>();
        foreach (var c in containers)
            if (c.Facts is { } facts && c.State != ContainerState.Unmanaged)
                foreach (var address in Visibility.Filterable(facts).Addresses)
                    owners[address] = c.Id;
        return owners.ToImmutable();
    }
}

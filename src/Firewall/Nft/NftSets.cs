using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Nft;

/// <summary>The sets and verdict maps of WhaleWall's table (docs/nftables.md) and the shape
/// of their keys.</summary>
public static class NftSets
{
    public sealed record SetShape(string Name, ImmutableArray<FieldKind> Key, bool Interval, bool VerdictMap = false, bool Counted = false,
        bool Timeout = false)
    {
        /// <summary>Per-element packet/byte counters: every allow set, and the drop-count sets.</summary>
        public bool HasCounters => Counted || (Interval && !VerdictMap);
    }

    public const string EstablishedQueues = "estq";

    public static string Managed(IpFamily f) => f == IpFamily.V4 ? "managed4" : "managed6";
    public static string Out(IpFamily f) => f == IpFamily.V4 ? "out4" : "out6";
    public static string OutVerdict(IpFamily f) => f == IpFamily.V4 ? "outv4" : "outv6";
    public static string Peer(IpFamily f) => f == IpFamily.V4 ? "peer4" : "peer6";
    public static string OutHosts(IpFamily f) => f == IpFamily.V4 ? "outh4" : "outh6";
    public static string Pub(IpFamily f) => f == IpFamily.V4 ? "pub4" : "pub6";
    public static string PubVerdict(IpFamily f) => f == IpFamily.V4 ? "pubv4" : "pubv6";
    public static string Local(IpFamily f) => f == IpFamily.V4 ? "local4" : "local6";
    public static string In(IpFamily f) => f == IpFamily.V4 ? "in4" : "in6";
    public static string Gateway(IpFamily f) => f == IpFamily.V4 ? "gw4" : "gw6";
    public static string LocalVerdict(IpFamily f) => f == IpFamily.V4 ? "localv4" : "localv6";
    /// <summary>Every managed address, looked up just before egress' final drop: the lookup
    /// counts the container's dropped outgoing packets in the element's counter.</summary>
    public static string DropOut(IpFamily f) => f == IpFamily.V4 ? "dropout4" : "dropout6";
    /// <summary>The same for ingress and from_host: dropped packets towards the container.</summary>
    public static string DropIn(IpFamily f) => f == IpFamily.V4 ? "dropin4" : "dropin6";

    /// <summary>Addresses of containers in audit mode, looked up just before the counted drops:
    /// a would-be drop is counted in the element, marked on its flow (<see cref="AuditMark"/>)
    /// and passes (egress: returns to the base chain, where the destination's ingress still applies).</summary>
    public static string AuditOut(IpFamily f) => f == IpFamily.V4 ? "auditout4" : "auditout6";
    public static string AuditIn(IpFamily f) => f == IpFamily.V4 ? "auditin4" : "auditin6";

    /// <summary>The ct mark bit an audited would-be drop sets on its flow: conntrack's new-flow
    /// event carries it, so the flow recorder knows what the kernel decided. Est-queue marks
    /// (<c>0x80000000 | original &lt;&lt; 15 | reply</c>, queues 0-32767) never use this bit.</summary>
    public const uint AuditMark = 0x40000000;

    /// <summary>Containers whose DNS goes to the proxy (docs/dns-proxy.md): a valid policy and the proxy on.</summary>
    public static string DnsProxy(IpFamily f) => f == IpFamily.V4 ? DnsProxyLayout.Set4 : DnsProxyLayout.Set6;

    /// <summary>What stays of a container when its policy cannot be applied: its addresses under
    /// drop-all (managed*), their drop counters (drop*) and, in audit mode, their audit elements
    /// (audit*: an audited container's drops pass, whatever the reason).</summary>
    public static bool KeptWhenFailClosed(string set) =>
        set.StartsWith("managed", StringComparison.Ordinal) || set.StartsWith("drop", StringComparison.Ordinal) ||
        set.StartsWith("audit", StringComparison.Ordinal);

    public static readonly ImmutableArray<SetShape> All = Build();

    public static readonly ImmutableDictionary<string, SetShape> ByName = All.ToImmutableDictionary(s => s.Name);

    /// <summary>The sets as the kernel holds them: <see cref="All"/> with each sharded set
    /// (<see cref="NftPlacement.IsSharded"/>) replaced by its shards.</summary>
    public static readonly ImmutableArray<SetShape> Declared =
        [.. All.SelectMany(s => NftPlacement.IsSharded(s.Name)
            ? Enumerable.Range(0, NftPlacement.Shards).Select(k => s with { Name = NftPlacement.ShardName(s.Name, k) })
            : [s])];

    public static readonly ImmutableDictionary<string, SetShape> DeclaredByName = Declared.ToImmutableDictionary(s => s.Name);

    /// <summary>Sets of earlier layouts that this one no longer declares (the unsharded
    /// <c>out4</c>/<c>out6</c>): the start-up transaction adds each with its old shape — a no-op
    /// where it exists — and deletes it, with its elements.</summary>
    public static readonly ImmutableArray<SetShape> Retired = [.. All.Where(s => NftPlacement.IsSharded(s.Name))];

    private static ImmutableArray<SetShape> Build()
    {
        var sets = ImmutableArray.CreateBuilder<SetShape>();
        foreach (var f in new[] { IpFamily.V4, IpFamily.V6 })
        {
            var a = f == IpFamily.V4 ? FieldKind.Ipv4 : FieldKind.Ipv6;
            ImmutableArray<FieldKind> flow = [a, a, FieldKind.Proto, FieldKind.Port, FieldKind.Port];
            ImmutableArray<FieldKind> published = [a, a, FieldKind.Proto, FieldKind.Port];
            ImmutableArray<FieldKind> local = [a, FieldKind.Proto, FieldKind.Port];
            sets.Add(new(Managed(f), [a], false));
            sets.Add(new(Out(f), flow, true));
            sets.Add(new(OutVerdict(f), flow, true, VerdictMap: true));
            sets.Add(new(Peer(f), flow, true));
            sets.Add(new(OutHosts(f), flow, true, Timeout: true));
            sets.Add(new(Pub(f), published, true));
            sets.Add(new(PubVerdict(f), published, true, VerdictMap: true));
            sets.Add(new(Local(f), local, true));
            sets.Add(new(LocalVerdict(f), local, true, VerdictMap: true));
            sets.Add(new(In(f), published, true));
            sets.Add(new(Gateway(f), [a], true));
            sets.Add(new(DropOut(f), [a], false, Counted: true));
            sets.Add(new(DropIn(f), [a], false, Counted: true));
            sets.Add(new(AuditOut(f), [a], false, Counted: true));
            sets.Add(new(AuditIn(f), [a], false, Counted: true));
            sets.Add(new(DnsProxy(f), [a], false));
        }
        // the exact twins (NftPlacement): hash sets, counted like their interval sets
        foreach (var set in sets.ToList())
            if (NftPlacement.TwinOf(set.Name) is { } twin)
                sets.Add(set with { Name = twin, Key = NftPlacement.TwinKey(set.Key), Interval = false, Counted = !set.VerdictMap });
        sets.Add(new(EstablishedQueues, [FieldKind.Mark], false, VerdictMap: true));
        return sets.ToImmutable();
    }
}

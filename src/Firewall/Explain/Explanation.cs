using System.Collections.Immutable;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Explain;

/// <summary>One chain the packet goes through and what it does there.
/// <paramref name="Chain"/>: <c>egress</c>, <c>ingress</c>, <c>from_host</c>, <c>dns_redirect</c> or <c>forward</c>.
/// <paramref name="Owner"/>: the container whose elements (or lack of them) decide.
/// <paramref name="Rule"/>: the rule behind the matching elements, when there is one.</summary>
public sealed record Hop(string Chain, string? Owner, bool Accepted, string Reason, RuleSource? Rule, ImmutableArray<Element> Elements);

/// <summary>What <see cref="Explainer"/> found for one query.
/// <paramref name="Accepted"/>: the policy lets the packet through. <paramref name="Passes"/>:
/// it does not, but the container whose policy drops it is in audit mode, so it passes (and is
/// counted as a would-be drop). <paramref name="Packet"/>: the packet that was evaluated.</summary>
public sealed record Explanation(
    string Container,
    ExplainQuery Query,
    Outcome Outcome,
    PolicyMode Mode,
    bool Accepted,
    bool Passes,
    string Reason,
    RuleSource? Rule,
    string? RuleOwner,
    ImmutableArray<Element> Elements,
    ImmutableArray<Hop> Hops,
    ImmutableArray<DnsLookup> Dns,
    ImmutableArray<string> Notes,
    string? Packet)
{
    public string Verdict => Accepted ? "accept" : "drop";

    /// <summary>The packet gets through (accepted, or dropped by a policy in audit mode).</summary>
    public bool Allowed => Accepted || Passes;

    public string Describe() =>
        Query.Direction == Direction.Egress
            ? $"{Container} -> {Query.Peer} {Proto(Query.Proto)}/{Query.Port}"
            : $"{Query.Peer} -> {Container} {Proto(Query.Proto)}/{Query.Port}";

    public string ToText()
    {
        var w = new StringWriter();
        w.WriteLine(SafeText.Escape($"{Describe()}: {Verdict.ToUpperInvariant()}{(Passes ? " (audit: passes, counted as a would-be drop)" : "")}"));
        w.WriteLine(SafeText.Escape($"  why: {Reason}"));
        // the reason usually names the rule already
        if (Rule is not null && !Reason.Contains(Rule.ToString(), StringComparison.Ordinal))
            w.WriteLine(SafeText.Escape($"  rule: {Rule}{(RuleOwner is not null && RuleOwner != Container ? $" of {RuleOwner}" : "")}"));
        if (Packet is not null) w.WriteLine(SafeText.Escape($"  packet: {Packet}"));
        foreach (var e in Elements) w.WriteLine(SafeText.Escape($"  kernel: {e}"));
        foreach (var d in Dns) w.WriteLine(SafeText.Escape($"  dns: {d.Name} -> {d.Address}, learned from the container's lookup, open until {d.Expires.ToUniversalTime():u}"));
        foreach (var n in Notes) w.WriteLine(SafeText.Escape($"  note: {n}"));
        return w.ToString();
    }

    /// <summary>The stable machine-readable form (<c>--json</c>).</summary>
    public JsonObject ToJson() => new()
    {
        ["container"] = Container,
        ["direction"] = Query.Direction == Direction.Egress ? "egress" : "ingress",
        ["proto"] = Proto(Query.Proto),
        ["peer"] = Query.Peer,
        ["port"] = Query.Port,
        ["verdict"] = Verdict,
        ["mode"] = Mode == PolicyMode.Audit ? "audit" : "enforce",
        ["passes"] = Allowed,
        ["state"] = Outcome.Label(),
        ["reason"] = SafeText.Escape(Reason),
        ["rule"] = Rule is null ? null : RuleJson(Rule, RuleOwner),
        ["packet"] = Packet,
        ["elements"] = new JsonArray([.. Elements.Select(e => (JsonNode)e.ToString())]),
        ["hops"] = new JsonArray([.. Hops.Select(h => (JsonNode)new JsonObject
        {
            ["chain"] = h.Chain,
            ["owner"] = h.Owner,
            ["verdict"] = h.Accepted ? "accept" : "drop",
            ["reason"] = SafeText.Escape(h.Reason),
            ["rule"] = h.Rule is null ? null : RuleJson(h.Rule, h.Owner),
            ["elements"] = new JsonArray([.. h.Elements.Select(e => (JsonNode)e.ToString())]),
        })]),
        ["dns"] = new JsonArray([.. Dns.Select(d => (JsonNode)new JsonObject
        {
            ["name"] = d.Name,
            ["address"] = d.Address.ToString(),
            ["expires"] = d.Expires.ToUniversalTime().ToString("O"),
        })]),
        ["notes"] = new JsonArray([.. Notes.Select(n => (JsonNode)SafeText.Escape(n))]),
    };

    private static JsonObject RuleJson(RuleSource rule, string? owner) => new()
    {
        ["label"] = SafeText.Escape(rule.Label),
        ["path"] = SafeText.Escape(rule.Path),
        ["line"] = rule.Line,
        ["owner"] = owner,
    };

    public static string Proto(L4Proto proto) => proto switch
    {
        L4Proto.Tcp => "tcp",
        L4Proto.Udp => "udp",
        L4Proto.Icmp => "icmp",
        _ => "icmpv6",
    };
}

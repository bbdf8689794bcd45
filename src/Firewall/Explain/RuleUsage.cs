using System.Collections.Immutable;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Explain;

/// <summary>What one rule matched, from the kernel's per-element counters.
/// <paramref name="Counted"/>: false when the kernel cannot say (a rule with a log prefix or
/// verdict goes through a verdict map, which has no counters; <c>_dns_</c> under the DNS proxy;
/// a rule that has no element now, e.g. a <c>container:</c> whose peer is absent).</summary>
public sealed record RuleHits(RuleSource? Source, string Rule, ulong Packets, bool Counted, string? Note = null);

/// <summary>Per-rule counters, derived from the per-element ones (README "suggest --unused"):
/// each rule is compiled alone, the way the daemon compiles the whole policy (the one decision
/// entry point, the same compiler), and a kernel element counts for the rule when it overlaps
/// one of the rule's own elements; an element shared by several rules (merged or overlapping)
/// makes them "not counted" rather than guessed, so a rule is never called unused when traffic
/// it allows passed. Pure.</summary>
public static class RuleUsage
{
    public static ImmutableArray<RuleHits> Of(DecisionContext context, ContainerFacts self, IReadOnlyCollection<ContainerFacts> others,
        IReadOnlyList<ListedElement> kernel)
    {
        var decision = ContainerDecider.Decide(context, self);
        if (decision.Policy is not PolicyDecision.Enforced enforced) return [];
        var policy = enforced.Policy;
        var proxied = decision.Dns is not null;
        var result = new List<(RuleHits Hits, List<Element> Own)>();
        foreach (var rule in policy.Output)
        {
            var name = Describe(rule);
            if (rule.Action is not null) { result.Add((new(rule.Source, name, 0, false, "its log prefix or verdict goes through a verdict map, which has no counters"), [])); continue; }
            if (proxied && rule.ToResolvers) { result.Add((new(rule.Source, name, 0, false, "port 53 goes to the DNS proxy"), [])); continue; }
            // a hosts: rule's addresses come and go: its own destinations are any address in outh*
            var hosts = !rule.HostsOrEmpty.IsEmpty;
            var probe = hosts ? rule with { Hosts = [], Ips = [] } : rule;
            var alone = Compile(self, ContainerPolicy.DropAll with { Output = [probe] }, others, proxied)
                .Where(e => e.Set.StartsWith("out", StringComparison.Ordinal) && !e.Set.StartsWith("outv", StringComparison.Ordinal))
                .Select(e => hosts ? new Element(e.Set.Replace("out", "outh"), e.Fields) : e).ToList();
            result.Add((alone.Count == 0
                ? new(rule.Source, name, 0, false, "no element in the kernel now (a container: whose peer is not running?)")
                : new(rule.Source, name, 0, true), alone));
        }
        foreach (var (mapped, local) in new[] { (policy.MappedPorts.External, false), (policy.MappedPorts.Localhost, true) })
        {
            if (!mapped.Allow) continue;
            var name = $"mapped_ports.{(local ? "localhost" : "external")}";
            if (mapped.Action is not null) { result.Add((new(mapped.Source, name, 0, false, "its log prefix or verdict goes through a verdict map, which has no counters"), [])); continue; }
            var only = local ? new MappedPortsPolicy(mapped, MappedRule.Closed) : new MappedPortsPolicy(MappedRule.Closed, mapped);
            var alone = Compile(self, ContainerPolicy.DropAll with { MappedPorts = only }, others, proxied)
                .Where(e => e.Set.StartsWith(local ? "local" : "pub", StringComparison.Ordinal) && !e.Set.StartsWith(local ? "localv" : "pubv", StringComparison.Ordinal)).ToList();
            result.Add((alone.Count == 0
                ? new(mapped.Source, name, 0, false, "no published port")
                : new(mapped.Source, name, 0, true), alone));
        }
        return Attribute(kernel, result);
    }

    /// <summary>A kernel element's packets count for the rule whose own elements it overlaps.
    /// One that overlaps several rules' (the compiler merged adjacent boxes, or the rules
    /// overlap) cannot be told apart: a rule whose only matched elements are such shared ones
    /// is "not counted", never "unused".</summary>
    private static ImmutableArray<RuleHits> Attribute(IReadOnlyList<ListedElement> kernel, List<(RuleHits Hits, List<Element> Own)> rules)
    {
        var packets = new ulong[rules.Count];
        var shared = new List<int>[rules.Count];
        foreach (var k in kernel)
        {
            var owners = new List<int>();
            for (var i = 0; i < rules.Count; i++)
                if (rules[i].Own.Any(e => e.Set == k.Set && NftElementFields.Overlap(k.Fields, e.Fields))) owners.Add(i);
            if (owners.Count == 1) packets[owners[0]] += k.Packets;
            else if (k.Packets > 0)
                foreach (var i in owners) (shared[i] ??= []).AddRange(owners.Where(j => j != i));
        }
        return [.. rules.Select((r, i) =>
            !r.Hits.Counted ? r.Hits
            : packets[i] > 0 || shared[i] is null ? r.Hits with { Packets = packets[i] }
            : r.Hits with
            {
                Counted = false,
                Note = "its kernel elements are shared with " + string.Join(", ", shared[i].Distinct().Select(j => rules[j].Hits.Rule)) +
                       " (adjacent or overlapping rules are merged): the counters cannot tell which of them matched",
            })];
    }

    private static IEnumerable<Element> Compile(ContainerFacts self, ContainerPolicy policy, IReadOnlyCollection<ContainerFacts> others, bool proxied) =>
        Compiler.Compile(self, new PolicyDecision.Enforced(policy), others, null, null, proxied).Fragment.Elements;

    public static string Describe(OutputRule rule) =>
        rule.Source is { } s ? s.ToString() : rule.ToResolvers ? "_dns_" : "rule";
}

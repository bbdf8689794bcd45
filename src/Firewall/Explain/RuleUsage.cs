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
/// one of the rule's own elements. Overlapping rules share what their overlap matched, so a
/// rule is never called unused when traffic it allows passed. Pure.</summary>
public static class RuleUsage
{
    public static ImmutableArray<RuleHits> Of(DecisionContext context, ContainerFacts self, IReadOnlyCollection<ContainerFacts> others,
        IReadOnlyList<ListedElement> kernel)
    {
        var decision = ContainerDecider.Decide(context, self);
        if (decision.Policy is not PolicyDecision.Enforced enforced) return [];
        var policy = enforced.Policy;
        var proxied = decision.Dns is not null;
        var result = ImmutableArray.CreateBuilder<RuleHits>();
        foreach (var rule in policy.Output)
        {
            var name = Describe(rule);
            if (rule.Action is not null) { result.Add(new(rule.Source, name, 0, false, "its log prefix or verdict goes through a verdict map, which has no counters")); continue; }
            if (proxied && rule.ToResolvers) { result.Add(new(rule.Source, name, 0, false, "port 53 goes to the DNS proxy")); continue; }
            // a hosts: rule's addresses come and go: its own destinations are any address in outh*
            var hosts = !rule.HostsOrEmpty.IsEmpty;
            var probe = hosts ? rule with { Hosts = [], Ips = [] } : rule;
            var alone = Compile(self, ContainerPolicy.DropAll with { Output = [probe] }, others, proxied)
                .Where(e => e.Set.StartsWith("out", StringComparison.Ordinal) && !e.Set.StartsWith("outv", StringComparison.Ordinal))
                .Select(e => hosts ? new Element(e.Set.Replace("out", "outh"), e.Fields) : e).ToList();
            result.Add(alone.Count == 0
                ? new(rule.Source, name, 0, false, "no element in the kernel now (a container: whose peer is not running?)")
                : new(rule.Source, name, Hits(kernel, alone), true));
        }
        foreach (var (mapped, local) in new[] { (policy.MappedPorts.External, false), (policy.MappedPorts.Localhost, true) })
        {
            if (!mapped.Allow) continue;
            var name = $"mapped_ports.{(local ? "localhost" : "external")}";
            if (mapped.Action is not null) { result.Add(new(mapped.Source, name, 0, false, "its log prefix or verdict goes through a verdict map, which has no counters")); continue; }
            var only = local ? new MappedPortsPolicy(mapped, MappedRule.Closed) : new MappedPortsPolicy(MappedRule.Closed, mapped);
            var alone = Compile(self, ContainerPolicy.DropAll with { MappedPorts = only }, others, proxied)
                .Where(e => e.Set.StartsWith(local ? "local" : "pub", StringComparison.Ordinal) && !e.Set.StartsWith(local ? "localv" : "pubv", StringComparison.Ordinal)).ToList();
            result.Add(alone.Count == 0
                ? new(mapped.Source, name, 0, false, "no published port")
                : new(mapped.Source, name, Hits(kernel, alone), true));
        }
        return result.ToImmutable();
    }

    private static IEnumerable<Element> Compile(ContainerFacts self, ContainerPolicy policy, IReadOnlyCollection<ContainerFacts> others, bool proxied) =>
        Compiler.Compile(self, new PolicyDecision.Enforced(policy), others, null, null, proxied).Fragment.Elements;

    private static ulong Hits(IReadOnlyList<ListedElement> kernel, List<Element> own) =>
        kernel.Where(k => own.Any(e => e.Set == k.Set && NftElementFields.Overlap(k.Fields, e.Fields)))
            .Aggregate(0UL, (n, k) => n + k.Packets);

    public static string Describe(OutputRule rule) =>
        rule.Source is { } s ? s.ToString() : rule.ToResolvers ? "_dns_" : "rule";
}

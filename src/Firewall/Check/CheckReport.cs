using System.Collections.Immutable;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Decide;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Check;

/// <summary>`whalewall check`: decides each service offline (no Docker, no root) exactly as the
/// daemon would — through <see cref="ContainerDecider"/> with the daemon's <see cref="DecisionContext"/>,
/// then the compiler — on facts made from the service: its labels, networks (with drivers) and
/// network mode, with placeholder addresses.</summary>
public static class CheckReport
{
    /// <summary>One service's verdict: what the daemon would make of it.</summary>
    public sealed record ServiceVerdict(string Name, Outcome Outcome, ImmutableArray<string> Reasons, int OutputRules, int Elements);

    /// <summary><paramref name="Valid"/>: every service would be enforced or is not managed.</summary>
    public sealed record Result(bool Valid, string Text, ImmutableArray<ServiceVerdict> Services)
    {
        public JsonObject ToJson(DecisionContext context) => new()
        {
            ["valid"] = Valid,
            ["context"] = context.Describe(),
            ["services"] = new JsonArray([.. Services.Select(s => (JsonNode)new JsonObject
            {
                ["name"] = s.Name,
                ["verdict"] = s.Outcome.Label(),
                ["reasons"] = new JsonArray([.. s.Reasons.Select(r => (JsonNode)r)]),
                ["output_rules"] = s.OutputRules,
                ["set_elements"] = s.Elements,
            })]),
        };
    }

    public static Result For(IReadOnlyList<ComposeService> services, bool printNft) =>
        For(services, DecisionContext.Default, printNft);

    public static Result For(IReadOnlyList<ComposeService> services, DecisionContext context, bool printNft)
    {
        var facts = Facts(services);
        var text = new StringBuilder();
        if (context.Gateway is not null) text.AppendLine(context.Describe());
        var verdicts = ImmutableArray.CreateBuilder<ServiceVerdict>();
        foreach (var container in facts)
        {
            var decision = ContainerDecider.Decide(context, container);
            var compiled = decision.Policy is PolicyDecision.Enforced ? Compiler.Compile(container, decision.Policy, facts) : null;
            var outcome = decision.After(compiled);
            var reasons = decision.Reasons(compiled);
            var rules = decision.Policy is PolicyDecision.Enforced e ? e.Policy.Output.Length : 0;
            verdicts.Add(new ServiceVerdict(SafeText.Escape(container.Name), outcome, reasons, rules, compiled?.Fragment.Elements.Length ?? 0));
            switch (outcome)
            {
                case Outcome.Unmanaged:
                    text.AppendLine(context.Gateway is null
                        ? $"{SafeText.Escape(container.Name)}: not managed (no {LabelKeys.Enabled}=true)"
                        : $"{SafeText.Escape(container.Name)}: not managed (no {LabelKeys.Enabled}=true, not on a gateway network)");
                    break;
                case Outcome.FailClosed:
                    text.AppendLine(reasons.Length == 1 && compiled?.Error is not null
                        ? $"{SafeText.Escape(container.Name)}: INVALID, would be drop-all: {reasons[0]}"
                        : $"{SafeText.Escape(container.Name)}: INVALID, would be drop-all:");
                    if (!(reasons.Length == 1 && compiled?.Error is not null))
                        foreach (var reason in reasons) text.AppendLine($"  {reason}");
                    break;
                case Outcome.Unfilterable:
                    text.AppendLine($"{SafeText.Escape(container.Name)}: UNFILTERABLE, its labels would NOT be (fully) enforced:");
                    foreach (var reason in reasons) text.AppendLine($"  {reason}");
                    break;
                case Outcome.Enforced:
                    text.AppendLine($"{SafeText.Escape(container.Name)}: ok ({rules} output rules, {compiled!.Fragment.Elements.Length} set elements)");
                    if (printNft) AppendNft(text, container, compiled.Fragment);
                    break;
            }
        }
        var all = verdicts.ToImmutable();
        return new Result(all.All(v => v.Outcome is Outcome.Enforced or Outcome.Unmanaged), text.ToString(), all);
    }

    /// <summary>The facts the daemon would see for these services, with placeholder addresses:
    /// the k-th network (in order of appearance) is 198.18.(255-k).0/24 and 2001:db8:ffff:k::/64,
    /// the i-th service has host number i + 2 on each of its networks.</summary>
    public static ImmutableArray<ContainerFacts> Facts(IReadOnlyList<ComposeService> services)
    {
        var subnets = new Dictionary<string, int>(StringComparer.Ordinal);
        int SubnetOf(string network) => subnets.TryGetValue(network, out var k) ? k : subnets[network] = subnets.Count % 200;
        return [.. services.Select((s, i) => new ContainerFacts(s.Name + "-id", s.Name, true, s.Labels,
            [.. s.NetworksOrDefault.Select(n =>
            {
                var k = SubnetOf(n.Name);
                var host = i % 250 + 2;
                return new NetworkAttachment(n.Name, n.Name + "-id",
                    IPAddress.Parse($"198.18.{255 - k}.{host}"), IPAddress.Parse($"2001:db8:ffff:{k:x}::{host:x}"), 24, 64, n.Driver);
            })],
            s.Ports, NetworkMode: s.NetworkMode))];
    }

    private static void AppendNft(StringBuilder text, ContainerFacts container, Fragment fragment)
    {
        text.AppendLine($"  # container addresses are placeholders: {string.Join(", ", container.Addresses)}");
        foreach (var element in fragment.Elements) text.AppendLine($"  element {element.Key}");
        foreach (var chain in fragment.ChainsOrEmpty)
        {
            var parts = new List<string>();
            if (chain.LogPrefix is { } p) parts.Add($"limit rate 10/second log prefix \"{p}\"");
            if (chain.SetMark is { } m) parts.Add($"ct mark set 0x{m:x8}");
            if (chain.Jump is { } j) parts.Add($"jump {j}");
            if (chain.Queue is { } q) parts.Add($"queue num {q}");
            if (chain.OriginalQueue is { } o) parts.Add($"ct direction original queue num {o}");
            if (chain.ReplyQueue is { } r) parts.Add($"queue num {r}");
            text.AppendLine($"  chain {chain.Name} {{ {string.Join("; ", parts)} }}");
        }
    }
}

using System.Collections.Immutable;
using System.Net;
using System.Text;
using WhaleWall.Firewall.Compile;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Nft;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Check;

/// <summary>`whalewall check`: validates labels offline (no Docker, no root) and optionally
/// shows what they compile to, with placeholder container addresses.</summary>
public static class CheckReport
{
    public sealed record Result(bool Valid, string Text);

    public static Result For(IReadOnlyList<ComposeService> services, bool printNft)
    {
        var facts = services.Select((s, i) => new ContainerFacts(s.Name + "-id", s.Name, true, s.Labels,
            [new NetworkAttachment("default", "default", IPAddress.Parse($"198.18.255.{i + 2}"), IPAddress.Parse($"2001:db8:ffff::{i + 2:x}"))],
            s.Ports)).ToList();
        var text = new StringBuilder();
        var valid = true;
        foreach (var container in facts)
        {
            var decision = LabelParser.Decide(container.Labels);
            switch (decision)
            {
                case PolicyDecision.Unmanaged:
                    text.AppendLine($"{container.Name}: not managed (no {LabelKeys.Enabled}=true)");
                    continue;
                case PolicyDecision.FailClosed failed:
                    valid = false;
                    text.AppendLine($"{container.Name}: INVALID, would be drop-all:");
                    foreach (var problem in failed.Errors) text.AppendLine($"  {problem}");
                    continue;
                case PolicyDecision.Enforced enforced:
                    var result = Compiler.Compile(container, decision, facts);
                    if (result.Error is { } error)
                    {
                        valid = false;
                        text.AppendLine($"{container.Name}: INVALID, would be drop-all: {error}");
                        continue;
                    }
                    text.AppendLine($"{container.Name}: ok ({enforced.Policy.Output.Length} output rules, {result.Fragment.Elements.Length} set elements)");
                    if (printNft) AppendNft(text, container, result.Fragment);
                    break;
            }
        }
        return new Result(valid, text.ToString());
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

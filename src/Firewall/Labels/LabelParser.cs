using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Labels;

/// <summary>Labels -> <see cref="PolicyDecision"/>. Pure, total: never throws; every problem
/// becomes a <see cref="LabelError"/> and any error makes the decision fail closed.</summary>
public static class LabelParser
{
    public static PolicyDecision Decide(IReadOnlyDictionary<string, string> labels)
    {
        if (!labels.TryGetValue(LabelKeys.Enabled, out var enabled)) return new PolicyDecision.Unmanaged();
        switch (enabled.Trim().ToLowerInvariant())
        {
            case "false": return new PolicyDecision.Unmanaged();
            case "true": break;
            default:
                return new PolicyDecision.FailClosed([new LabelError(LabelKeys.Enabled, "", null,
                    $"must be \"true\" or \"false\", got \"{Truncate(enabled)}\"")]);
        }

        if (!labels.TryGetValue(LabelKeys.Rules, out var rules) || string.IsNullOrWhiteSpace(rules))
            return new PolicyDecision.Enforced(ContainerPolicy.DropAll);

        var result = ParseRules(rules);
        return result.Errors.IsEmpty
            ? new PolicyDecision.Enforced(result.Policy)
            : new PolicyDecision.FailClosed(result.Errors);
    }

    public sealed record RulesResult(ContainerPolicy Policy, ImmutableArray<LabelError> Errors);

    /// <summary>Parses the YAML of <c>whalewall.rules</c>. Unknown keys are errors.</summary>
    public static RulesResult ParseRules(string yaml)
    {
        var errors = new ErrorSink(LabelKeys.Rules);
        if (System.Text.Encoding.UTF8.GetByteCount(yaml) > LabelKeys.MaxRulesLabelBytes)
        {
            errors.Add("", (int?)null, $"label is larger than {LabelKeys.MaxRulesLabelBytes} bytes");
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
        }

        YamlNode? root;
        try
        {
            var stream = new YamlStream();
            stream.Load(new StringReader(yaml));
            if (stream.Documents.Count > 1)
            {
                errors.Add("", (int?)null, "more than one YAML document");
                return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
            }
            root = stream.Documents.Count == 0 ? null : stream.Documents[0].RootNode;
        }
        catch (YamlException e)
        {
            errors.Add("", (int)e.Start.Line, "invalid YAML: " + FirstLine(e.Message));
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException)
        {
            errors.Add("", (int?)null, "invalid YAML: " + FirstLine(e.Message));
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
        }

        if (root is null || root is YamlScalarNode { Value: null or "" or "~" or "null" })
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());

        var reader = new RulesReader(errors);
        var policy = reader.Root(root);
        return new RulesResult(errors.Count == 0 ? policy : ContainerPolicy.DropAll, errors.ToImmutable());
    }

    internal static string Truncate(string text, int max = 64) =>
        text.Length <= max ? text : text[..max] + "…";

    private static string FirstLine(string text) => text.Split('\n')[0].Trim();
}

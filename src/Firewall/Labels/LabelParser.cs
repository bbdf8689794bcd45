using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;
using YamlDotNet.RepresentationModel;

namespace WhaleWall.Firewall.Labels;

/// <summary>Labels -> <see cref="PolicyDecision"/>. Pure, total: never throws; every problem
/// becomes a <see cref="LabelError"/> and any error makes the decision fail closed.</summary>
public static class LabelParser
{
    public static PolicyDecision Decide(IReadOnlyDictionary<string, string> labels, bool proxy = false)
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

        var result = ParseRules(rules, proxy);
        return result.Errors.IsEmpty
            ? new PolicyDecision.Enforced(result.Policy)
            : new PolicyDecision.FailClosed(result.Errors);
    }

    public sealed record RulesResult(ContainerPolicy Policy, ImmutableArray<LabelError> Errors);

    /// <summary>Parses the YAML of <c>whalewall.rules</c>. Unknown keys are errors.</summary>
    public static RulesResult ParseRules(string yaml, bool proxy = false)
    {
        var errors = new ErrorSink(LabelKeys.Rules);
        if (System.Text.Encoding.UTF8.GetByteCount(yaml) > LabelKeys.MaxRulesLabelBytes)
        {
            errors.Add("", (int?)null, $"label is larger than {LabelKeys.MaxRulesLabelBytes} bytes");
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
        }

        var loaded = BoundedYaml.Load(yaml, BoundedYaml.Label);
        if (loaded.Error is { } problem)
        {
            errors.Add("", problem.Line, problem.Message);
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
        }
        if (loaded.Documents.Length > 1)
        {
            errors.Add("", (int?)null, "more than one YAML document");
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());
        }
        var root = loaded.Documents.IsEmpty ? null : loaded.Documents[0];

        if (root is null || root is YamlScalarNode { Value: null or "" or "~" or "null" })
            return new RulesResult(ContainerPolicy.DropAll, errors.ToImmutable());

        var reader = new RulesReader(errors, proxy);
        var policy = reader.Root(root);
        return new RulesResult(errors.Count == 0 ? policy : ContainerPolicy.DropAll, errors.ToImmutable());
    }

    /// <summary>Label text quoted in an error: escaped (<see cref="SafeText"/>) and cut to
    /// <paramref name="max"/> characters.</summary>
    internal static string Truncate(string text, int max = 64) => SafeText.Escape(text, max);
}

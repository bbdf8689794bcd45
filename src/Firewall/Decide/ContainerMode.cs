using System.Collections.Immutable;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Decide;

/// <summary>Enforce: what the policy does not allow is dropped. Audit: the same policy, the same
/// rules, but what it would drop is counted (<c>verdict="audit_drop"</c>), recorded and passes.</summary>
public enum PolicyMode { Enforce, Audit }

/// <summary>A container's mode and whether its flows are learned, from its labels and the
/// daemon's global mode. Pure. <c>whalewall.mode</c> overrides <c>WHALEWALL_MODE</c> either way
/// (a container may insist on enforce under a global audit); an invalid value is a label error
/// (the container fails closed and is enforced: a typo never opens anything).</summary>
public static class ContainerMode
{
    public sealed record Result(PolicyMode Mode, bool Learn, ImmutableArray<LabelError> Errors);

    /// <summary><c>WHALEWALL_MODE</c> / <c>whalewall.mode</c>: null for an invalid value.</summary>
    public static PolicyMode? Parse(string? value) => (value ?? "").Trim().ToLowerInvariant() switch
    {
        "" or "enforce" => PolicyMode.Enforce,
        "audit" => PolicyMode.Audit,
        _ => null,
    };

    public static Result Of(IReadOnlyDictionary<string, string> labels, PolicyMode global)
    {
        var errors = ImmutableArray.CreateBuilder<LabelError>();
        var mode = global;
        if (labels.TryGetValue(LabelKeys.Mode, out var label))
        {
            if (Parse(label) is { } parsed && label.Trim().Length > 0) mode = parsed;
            else
            {
                errors.Add(new LabelError(LabelKeys.Mode, "", null, $"must be \"enforce\" or \"audit\", got \"{LabelParser.Truncate(label)}\""));
                mode = PolicyMode.Enforce;
            }
        }
        var learn = false;
        if (labels.TryGetValue(LabelKeys.Learn, out var l))
        {
            switch (l.Trim().ToLowerInvariant())
            {
                case "true": learn = true; break;
                case "false": break;
                default:
                    errors.Add(new LabelError(LabelKeys.Learn, "", null, $"must be \"true\" or \"false\", got \"{LabelParser.Truncate(l)}\""));
                    break;
            }
        }
        return new(mode, learn || mode == PolicyMode.Audit, errors.ToImmutable());
    }
}

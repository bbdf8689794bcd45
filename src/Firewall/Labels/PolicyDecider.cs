using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Labels;

/// <summary>Labels + deny-by-default configuration -> what WhaleWall does with a container.
/// Pure and total.
/// <list type="bullet">
/// <item><c>whalewall.enabled=true</c>: the whalewall rules (plus any <c>dockerwall.outbound</c> entries).</item>
/// <item><c>dockerwall.outbound=...</c> alone: opts in with that outbound list.</item>
/// <item>deny-by-default mode, a container on a gateway network without labels: <c>DEFAULT_OUTBOUND</c>.</item>
/// <item>In deny-by-default mode a container on a gateway network also talks freely with the
/// containers on its gateway networks, both ways; everything else it is denied.</item>
/// <item>Anything else: left alone.</item>
/// </list></summary>
public static class PolicyDecider
{
    public const string DockerwallOutbound = "dockerwall.outbound";

    public static PolicyDecision Decide(ContainerFacts facts, GatewayConfig? gateway)
    {
        var labels = facts.Labels;
        var neighbours = gateway is null
            ? ImmutableArray<string>.Empty
            : [.. facts.Networks.Where(gateway.IsGateway).Select(n => n.Name).Distinct()];
        var onGateway = !neighbours.IsEmpty;

        var whalewall = LabelParser.Decide(labels);
        var outbound = labels.TryGetValue(DockerwallOutbound, out var list) ? OutboundList.Parse(list, DockerwallOutbound) : default;
        var hasOutbound = labels.ContainsKey(DockerwallOutbound);

        PolicyDecision decision;
        if (whalewall is not PolicyDecision.Unmanaged) decision = whalewall;
        else if (hasOutbound) decision = new PolicyDecision.Enforced(ContainerPolicy.DropAll);
        else if (onGateway)
        {
            var defaults = OutboundList.Parse(gateway!.DefaultOutbound, "DEFAULT_OUTBOUND");
            decision = defaults.Errors.IsEmpty
                ? new PolicyDecision.Enforced(ContainerPolicy.DropAll with { Output = defaults.Rules })
                : new PolicyDecision.FailClosed(defaults.Errors);
        }
        else return whalewall;

        if (hasOutbound)
        {
            if (!outbound.Errors.IsEmpty)
            {
                var earlier = decision is PolicyDecision.FailClosed f ? f.Errors : [];
                return new PolicyDecision.FailClosed(earlier.AddRange(outbound.Errors));
            }
            if (decision is PolicyDecision.Enforced e)
                decision = new PolicyDecision.Enforced(e.Policy with { Output = e.Policy.Output.AddRange(outbound.Rules) });
        }
        if (onGateway && decision is PolicyDecision.Enforced enforced)
            decision = new PolicyDecision.Enforced(enforced.Policy with { NeighbourNetworks = neighbours });
        return decision;
    }

    /// <summary>Checks a DEFAULT_OUTBOUND value at start-up.</summary>
    public static ImmutableArray<LabelError> ValidateDefaultOutbound(string value) =>
        OutboundList.Parse(value, "DEFAULT_OUTBOUND").Errors;
}

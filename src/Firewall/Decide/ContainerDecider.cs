using System.Collections.Immutable;
using WhaleWall.Firewall.Dns;
using WhaleWall.Firewall.Labels;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Decide;

/// <summary>The one decision entry point: context + container facts (labels, networks, network
/// mode) -> <see cref="Decision"/>. The daemon, <c>check</c>, <c>status</c> and <c>explain</c>
/// all come through here. Pure and total.
/// <list type="bullet">
/// <item><c>whalewall.enabled=true</c>: the whalewall rules (plus any <c>dockerwall.outbound</c> entries).</item>
/// <item><c>dockerwall.outbound=...</c> alone: opts in with that outbound list.</item>
/// <item>deny-by-default mode, a container on a gateway network without labels: <c>DEFAULT_OUTBOUND</c>.</item>
/// <item>In deny-by-default mode a container on a gateway network also talks freely with the
/// containers on its gateway networks, both ways; everything else it is denied.</item>
/// <item>Anything else: left alone.</item>
/// </list>
/// Whatever the policy, the attachments WhaleWall cannot see are listed (<see cref="Visibility"/>).</summary>
public static class ContainerDecider
{
    public const string DockerwallOutbound = "dockerwall.outbound";

    public static Decision Decide(DecisionContext context, ContainerFacts facts)
    {
        var policy = Policy(context.Gateway, facts, context.DnsProxy);
        DnsPolicy? dns = null;
        if (context.DnsProxy && policy is PolicyDecision.Enforced enforced)
        {
            // the proxy's own labels: errors fail the container closed like any label error
            var parsed = DnsLabels.Parse(facts.Labels);
            if (parsed.Errors.IsEmpty) dns = DnsPolicy.From(enforced.Policy, parsed.Reject, parsed.ExtraTypes);
            else policy = new PolicyDecision.FailClosed(parsed.Errors);
        }
        else if (context.DnsProxy && policy is PolicyDecision.FailClosed closed && DnsLabels.Parse(facts.Labels).Errors is { IsEmpty: false } more)
            policy = new PolicyDecision.FailClosed(closed.Errors.AddRange(more));
        var mode = PolicyMode.Enforce;
        var learn = false;
        if (policy.IsManaged)
        {
            var m = ContainerMode.Of(facts.Labels, context.Mode);
            if (!m.Errors.IsEmpty)
            {
                // a mode the labels get wrong: enforced and closed, never opened by a typo
                var earlier = policy is PolicyDecision.FailClosed f ? f.Errors : [];
                policy = new PolicyDecision.FailClosed(earlier.AddRange(m.Errors));
                dns = null;
            }
            else (mode, learn) = (m.Mode, m.Learn);
        }
        if (dns is not null && mode == PolicyMode.Audit) dns = dns with { Audit = true };
        return new(policy, Visibility.Invisible(facts)) { Dns = dns, Mode = mode, Learn = learn };
    }

    private static PolicyDecision Policy(GatewayConfig? gateway, ContainerFacts facts, bool proxy)
    {
        var labels = facts.Labels;
        var neighbours = gateway is null
            ? ImmutableArray<string>.Empty
            : [.. facts.Networks.Where(gateway.IsGateway).Select(n => n.Name).Distinct()];
        var onGateway = !neighbours.IsEmpty;

        var whalewall = LabelParser.Decide(labels, proxy);
        var outbound = labels.TryGetValue(DockerwallOutbound, out var list) ? OutboundList.Parse(list, DockerwallOutbound, proxy) : default;
        var hasOutbound = labels.ContainsKey(DockerwallOutbound);

        PolicyDecision decision;
        if (whalewall is not PolicyDecision.Unmanaged) decision = whalewall;
        else if (hasOutbound) decision = new PolicyDecision.Enforced(ContainerPolicy.DropAll);
        else if (onGateway)
        {
            var defaults = OutboundList.Parse(gateway!.DefaultOutbound, "DEFAULT_OUTBOUND", proxy);
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
}

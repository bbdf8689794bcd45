using System.Collections.Immutable;
using System.Text.RegularExpressions;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Labels;

/// <summary>dockerwall's outbound list (<c>dockerwall.outbound</c>, <c>DEFAULT_OUTBOUND</c>):
/// comma-separated addresses/CIDRs/ranges, DNS names (<c>*.example.com</c> one label deep) and
/// <c>_dns_</c> (the container's own resolvers, port 53 only). Every entry allows all
/// protocols and ports to it, as in dockerwall.</summary>
public static partial class OutboundList
{
    public const string Dns = "_dns_";

    public static (ImmutableArray<OutputRule> Rules, ImmutableArray<LabelError> Errors) Parse(string text, string label, bool proxy = false)
    {
        var rules = ImmutableArray.CreateBuilder<OutputRule>();
        var errors = ImmutableArray.CreateBuilder<LabelError>();
        var entries = text.Split(',', StringSplitOptions.TrimEntries);
        if (text.Length > LabelKeys.MaxRulesLabelBytes || entries.Length > LabelKeys.MaxListLength)
            return ([], [new LabelError(label, "", null, $"at most {LabelKeys.MaxListLength} entries and {LabelKeys.MaxRulesLabelBytes} bytes")]);

        // one rule per entry, so each rule says which entry it is (the compiled elements are the
        // same as for one rule listing them all: a product of destinations is a union of boxes)
        for (var i = 0; i < entries.Length; i++)
        {
            var entry = entries[i];
            if (entry.Length == 0) continue;
            if (entry == Dns)
            {
                rules.Add(Resolvers(L4Proto.Udp) with { Source = Source(label, i) });
                rules.Add(Resolvers(L4Proto.Tcp) with { Source = Source(label, i) });
            }
            else if (AddressSyntax.Parse(entry) is { Range: { } range })
                rules.Add(new OutputRule(null, [range], null, null, [], [], Source: Source(label, i)));
            else if (IsHostName(entry) || (proxy && entry.StartsWith('*')))
            {
                if (HostSyntax.Normalise(entry, proxy, out var problem) is { } name)
                    rules.Add(new OutputRule(null, [], null, null, [], [], Hosts: [name], Source: Source(label, i)));
                else errors.Add(new LabelError(label, $"[{i}]", null, problem!));
            }
            else errors.Add(new LabelError(label, $"[{i}]", null, $"\"{LabelParser.Truncate(entry)}\" is not an address, CIDR, range, DNS name or _dns_"));
        }
        return (rules.ToImmutable(), errors.ToImmutable());
    }

    private static RuleSource Source(string label, int entry) => new(label, $"[{entry}]", null);

    private static OutputRule Resolvers(L4Proto proto) =>
        new(null, [], null, proto, [], [new PortRange(53, 53)], ToResolvers: true);

    /// <summary>A DNS name, or <c>*.</c> followed by one: the wildcard stands for exactly one
    /// label, so <c>*.example.com</c> matches <c>a.example.com</c>, not <c>example.com</c>.</summary>
    public static bool IsHostName(string text) => text.Length <= 253 && HostName().IsMatch(text);

    [GeneratedRegex(@"^(\*\.)?([a-zA-Z0-9_]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?\.)+[a-zA-Z]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?\.?$")]
    private static partial Regex HostName();
}

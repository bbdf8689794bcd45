using System.Collections.Immutable;
using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Dns;

/// <summary>
/// The proxy's two labels, parsed as values (errors fail the container closed like every
/// other label error):
/// <list type="bullet">
/// <item><c>whalewall.dns.reject</c>: <c>refused</c> (default) or <c>nxdomain</c>.</item>
/// <item><c>whalewall.dns.types</c>: a comma list of query types allowed on top of A and AAAA
/// (<c>HTTPS,SVCB</c>, <c>SRV</c>, ...; see <see cref="DnsTypes.Allowable"/>). Addresses in
/// HTTPS/SVCB hints are never learned: only A/AAAA answers open addresses.</item>
/// </list>
/// </summary>
public static class DnsLabels
{
    public const string Reject = "whalewall.dns.reject";
    public const string Types = "whalewall.dns.types";
    private const int MaxTypes = 16;

    public sealed record Parsed(RejectMode Reject, ImmutableHashSet<ushort> ExtraTypes, ImmutableArray<LabelError> Errors);

    public static Parsed Parse(IReadOnlyDictionary<string, string> labels)
    {
        var errors = ImmutableArray.CreateBuilder<LabelError>();
        var reject = RejectMode.Refused;
        if (labels.TryGetValue(Reject, out var rejectText))
        {
            switch (rejectText.Trim().ToLowerInvariant())
            {
                case "refused": reject = RejectMode.Refused; break;
                case "nxdomain": reject = RejectMode.NxDomain; break;
                default:
                    errors.Add(new LabelError(Reject, "", null, $"\"{Short(rejectText)}\" is not refused or nxdomain"));
                    break;
            }
        }
        var types = ImmutableHashSet.CreateBuilder<ushort>();
        if (labels.TryGetValue(Types, out var typesText))
        {
            var entries = typesText.Split(',', StringSplitOptions.TrimEntries);
            if (entries.Length > MaxTypes)
                errors.Add(new LabelError(Types, "", null, $"at most {MaxTypes} types"));
            else
                for (var i = 0; i < entries.Length; i++)
                {
                    var entry = entries[i];
                    if (entry.Equals("A", StringComparison.OrdinalIgnoreCase) || entry.Equals("AAAA", StringComparison.OrdinalIgnoreCase))
                        continue; // always allowed; naming them is harmless
                    if (DnsTypes.Allowable.TryGetValue(entry, out var type)) types.Add(type);
                    else
                        errors.Add(new LabelError(Types, $"[{i}]", null,
                            $"\"{Short(entry)}\" is not a query type a container may ask for (one of: {string.Join(", ", DnsTypes.Allowable.Keys)})"));
                }
        }
        return new Parsed(reject, types.ToImmutable(), errors.ToImmutable());
    }

    private static string Short(string text)
    {
        var clean = new string(text.Take(40).Select(c => char.IsControl(c) ? '?' : c).ToArray());
        return text.Length > 40 ? clean + "..." : clean;
    }
}

using WhaleWall.Firewall.Names;

namespace WhaleWall.Firewall.Labels;

/// <summary>Host names in `hosts:` and dockerwall's outbound list.</summary>
public static class HostSyntax
{
    /// <summary>Null when <paramref name="name"/> is a host name WhaleWall can keep resolved;
    /// otherwise why not. <paramref name="proxy"/>: the DNS proxy is on, so the wildcard grammar
    /// of <see cref="NamePattern"/> applies (<c>*.</c> one label, <c>**.</c> any depth).</summary>
    public static string? Check(string name, bool proxy = false) => Normalise(name, proxy, out var problem) is null ? problem : null;

    /// <summary>The name as <c>hosts:</c> keeps it (lower case, no trailing dot; under the proxy
    /// the normalised pattern, IDNA A-labels), or null with <paramref name="problem"/> set.</summary>
    public static string? Normalise(string name, bool proxy, out string? problem)
    {
        problem = null;
        if (proxy)
        {
            if (NamePattern.TryParse(name, out var pattern, out var error)) return pattern.ToString();
            problem = $"\"{LabelParser.Truncate(name)}\": {error}";
            return null;
        }
        if (name.StartsWith('*'))
            problem = $"\"{LabelParser.Truncate(name)}\": wildcard names need the DNS proxy (WHALEWALL_DNS_PROXY is off); name each host";
        else if (!OutboundList.IsHostName(name))
            problem = $"\"{LabelParser.Truncate(name)}\" is not a DNS name";
        return problem is null ? name.ToLowerInvariant().TrimEnd('.') : null;
    }
}

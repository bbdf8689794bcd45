namespace WhaleWall.Firewall.Labels;

/// <summary>Host names in `hosts:` and dockerwall's outbound list.</summary>
public static class HostSyntax
{
    /// <summary>Null when <paramref name="name"/> is a host name WhaleWall can keep resolved;
    /// otherwise why not.</summary>
    public static string? Check(string name)
    {
        if (!OutboundList.IsHostName(name))
            return $"\"{LabelParser.Truncate(name)}\" is not a DNS name";
        if (name.StartsWith("*.", StringComparison.Ordinal))
            return $"\"{LabelParser.Truncate(name)}\": wildcard names cannot be resolved ahead of time; name each host";
        return null;
    }
}

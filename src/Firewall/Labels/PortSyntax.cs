using WhaleWall.Firewall.Policy;

namespace WhaleWall.Firewall.Labels;

/// <summary>Parses a port field: <c>80</c> or an inclusive range <c>1000-2000</c>.</summary>
public static class PortSyntax
{
    public readonly record struct Result(PortRange? Range, string? Error);

    public static Result Parse(string text)
    {
        var dash = text.IndexOf('-');
        if (dash < 0)
            return Port(text, out var p) ? new(new PortRange(p, p), null) : Error(text);
        if (!Port(text[..dash].Trim(), out var lo) || !Port(text[(dash + 1)..].Trim(), out var hi))
            return Error(text);
        return lo <= hi
            ? new(new PortRange(lo, hi), null)
            : new(null, $"port range \"{text}\" ends before it starts");
    }

    private static bool Port(string text, out ushort port) =>
        ushort.TryParse(text, System.Globalization.NumberStyles.None, null, out port) && port > 0;

    private static Result Error(string text) =>
        new(null, $"\"{LabelParser.Truncate(text)}\" is not a port (1-65535) or port range (a-b)");
}

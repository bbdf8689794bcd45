namespace WhaleWall.Firewall.Names;

/// <summary>
/// A name as a label writes it in <c>hosts:</c>, in its matching form:
/// <list type="table">
/// <item><term><c>api.example.com</c></term><description>exactly that name</description></item>
/// <item><term><c>*.example.com</c></term><description>exactly one label before
/// <c>example.com</c>: <c>a.example.com</c>, not <c>example.com</c>, not
/// <c>a.b.example.com</c></description></item>
/// <item><term><c>*.*.example.com</c></term><description>exactly two labels (each
/// <c>*</c> is one label; Cilium users write this, so it keeps its meaning)</description></item>
/// <item><term><c>**.example.com</c></term><description>one or more labels:
/// <c>a.example.com</c>, <c>a.b.example.com</c>, never <c>example.com</c> itself</description></item>
/// </list>
/// A wildcard is only ever a whole leading label: <c>a*.example.com</c>,
/// <c>a.*.example.com</c>, <c>*.**.example.com</c> and a pattern with nothing but
/// wildcards are refused. Matching is on whole labels of normalised names, so
/// <c>*.example.com</c> never matches <c>badexample.com</c> or <c>a.example.com.evil</c>.
/// </summary>
public sealed record NamePattern
{
    /// <summary>The fixed part: the whole name for an exact pattern, what follows the wildcard labels otherwise.</summary>
    public DnsName Suffix { get; }

    /// <summary>0 for an exact name; n for n leading <c>*</c> labels (exactly n labels).</summary>
    public int SingleLabels { get; }

    /// <summary>True for <c>**.</c>: one or more labels.</summary>
    public bool AnyDepth { get; }

    private NamePattern(DnsName suffix, int singleLabels, bool anyDepth)
    {
        Suffix = suffix;
        SingleLabels = singleLabels;
        AnyDepth = anyDepth;
    }

    public bool IsExact => SingleLabels == 0 && !AnyDepth;

    public override string ToString() =>
        AnyDepth ? "**." + Suffix : string.Concat(Enumerable.Repeat("*.", SingleLabels)) + Suffix;

    public static NamePattern Exact(DnsName name) => new(name, 0, false);

    public static NamePattern Parse(string text) =>
        TryParse(text, out var pattern, out var error) ? pattern : throw new FormatException(error);

    /// <summary>Parses a pattern; false with the reason when it is refused.</summary>
    public static bool TryParse(string? text, out NamePattern pattern, out string error)
    {
        pattern = null!;
        if (string.IsNullOrEmpty(text)) { error = "empty name"; return false; }
        if (text.Length > 2 * DnsName.MaxLength + 2) { error = $"longer than {DnsName.MaxLength} bytes"; return false; }
        var rest = text;
        var singles = 0;
        var anyDepth = false;
        if (rest.StartsWith("**.", StringComparison.Ordinal))
        {
            anyDepth = true;
            rest = rest[3..];
        }
        else
            while (rest.StartsWith("*.", StringComparison.Ordinal))
            {
                singles++;
                rest = rest[2..];
            }

        if (rest is "*" or "**" or "*." or "**." || rest.Length == 0 || rest == ".")
        {
            error = "a pattern needs at least one fixed label after its wildcards (to allow every name, use an address rule)";
            return false;
        }
        if (rest.StartsWith("**.", StringComparison.Ordinal) || rest.StartsWith("*.", StringComparison.Ordinal))
        {
            error = "\"**.\" stands alone as the first label: write **.suffix (any depth) or *.*.suffix (exactly two labels), not a mix";
            return false;
        }
        if (rest.Contains('*'))
        {
            error = "a wildcard must be a whole first label (\"*.\" one label, \"**.\" any depth); \"*\" inside or after a label is not supported";
            return false;
        }
        if (!DnsName.TryParse(rest, out var suffix, out var why))
        {
            error = why;
            return false;
        }
        // the shortest name a pattern can match must itself fit the limits
        var shortest = suffix.Value.Length + (anyDepth ? 2 : 2 * singles);
        if (shortest > DnsName.MaxLength)
        {
            error = $"no name that long can match: longer than {DnsName.MaxLength} bytes";
            return false;
        }
        pattern = new NamePattern(suffix, singles, anyDepth);
        error = "";
        return true;
    }

    /// <summary>Whether <paramref name="name"/> matches; label by label, no string tricks.</summary>
    public bool Matches(DnsName name)
    {
        var extra = name.Labels.Count - Suffix.Labels.Count;
        if (IsExact) return extra == 0 && name.Value == Suffix.Value;
        if (AnyDepth ? extra < 1 : extra != SingleLabels) return false;
        for (var i = 0; i < Suffix.Labels.Count; i++)
            if (name.Labels[extra + i] != Suffix.Labels[i]) return false;
        return true;
    }
}

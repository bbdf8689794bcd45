using System.Globalization;
using System.Text;

namespace WhaleWall.Firewall.Names;

/// <summary>
/// A DNS name in the one form WhaleWall compares: ASCII (IDNA A-labels), lower case, no
/// trailing dot. Built only through <see cref="TryParse"/>, so two names are equal exactly
/// when their strings are equal.
/// <list type="bullet">
/// <item>Case: folded to lower case (DNS compares ASCII case-insensitively).</item>
/// <item>One trailing dot (the fully qualified form) is accepted and dropped; empty labels
/// (<c>a..b</c>, a leading dot, <c>..</c>) are refused.</item>
/// <item>Non-ASCII labels become A-labels through <see cref="IdnMapping"/> (UTS #46,
/// STD3 rules); a label it refuses is refused. An ASCII label that starts <c>xn--</c> must
/// decode as valid punycode, so two spellings of one name cannot differ.</item>
/// <item>ASCII labels hold letters, digits, <c>-</c> and <c>_</c>; a hyphen may not start or
/// end a label. The underscore is accepted because real names carry it
/// (<c>_acme-challenge</c>, <c>_sip._tcp</c>, hosts named by tools that allow it); it is an
/// ordinary character for matching. Anything else (spaces, <c>*</c>, <c>/</c>, bytes above
/// 127 in a wire name that is not valid IDNA, ...) is refused.</item>
/// <item>At most 253 bytes (the presentation form without the trailing dot, i.e. 255 on the
/// wire) and 63 bytes per label.</item>
/// </list>
/// </summary>
public sealed record DnsName
{
    public const int MaxLength = 253;
    public const int MaxLabelLength = 63;

    private static readonly IdnMapping Idn = new() { AllowUnassigned = false, UseStd3AsciiRules = true };

    public string Value { get; }
    public IReadOnlyList<string> Labels { get; }

    private DnsName(string value, string[] labels)
    {
        Value = value;
        Labels = labels;
    }

    public override string ToString() => Value;

    public bool Equals(DnsName? other) => other is not null && other.Value == Value;
    public override int GetHashCode() => Value.GetHashCode(StringComparison.Ordinal);

    public static DnsName Parse(string text) =>
        TryParse(text, out var name, out var error) ? name : throw new FormatException(error);

    /// <summary>Normalises <paramref name="text"/>; false with the reason when it is not a
    /// name WhaleWall accepts.</summary>
    public static bool TryParse(string? text, out DnsName name, out string error)
    {
        name = null!;
        if (string.IsNullOrEmpty(text)) { error = "empty name"; return false; }
        // bound the work before anything else: a name twice the limit cannot shrink to fit
        // (IDNA only lengthens ASCII, and non-ASCII characters become several bytes)
        if (text.Length > 2 * MaxLength + 2) { error = $"longer than {MaxLength} bytes"; return false; }
        var body = text.EndsWith('.') ? text[..^1] : text;
        if (body.Length == 0) { error = "the root is not a host name"; return false; }
        var raw = body.Split('.');
        var labels = new string[raw.Length];
        for (var i = 0; i < raw.Length; i++)
        {
            if (!TryLabel(raw[i], out labels[i], out var why))
            {
                error = raw.Length == 1 ? why : $"label {i + 1} {why}";
                return false;
            }
        }
        var value = string.Join('.', labels);
        if (value.Length > MaxLength) { error = $"longer than {MaxLength} bytes"; return false; }
        name = new DnsName(value, labels);
        error = "";
        return true;
    }

    private static bool TryLabel(string raw, out string label, out string error)
    {
        label = "";
        if (raw.Length == 0) { error = "is empty"; return false; }
        if (!IsAscii(raw))
        {
            // The daemon runs with invariant globalization, where IdnMapping is plain punycode
            // without UTS #46 mapping; with ICU it maps (case, width, ignorables). To get the
            // same answer in both, WhaleWall lower-cases itself, accepts only letters, digits,
            // marks and '-', refuses fullwidth/halfwidth forms, and requires the label to
            // survive A-label -> U-label unchanged (so it was already in mapped form).
            var lower = raw.ToLowerInvariant();
            foreach (var c in lower)
                if (!IsUnicodeLabelChar(c))
                {
                    error = $"holds '{Printable(c)}', which is not allowed in an internationalised label";
                    return false;
                }
            try
            {
                label = Idn.GetAscii(lower);
                if (!string.Equals(Idn.GetUnicode(label), lower, StringComparison.Ordinal))
                {
                    error = "is not in IDNA-mapped form (write it as it is looked up)";
                    return false;
                }
            }
            catch (ArgumentException) { error = "is not a valid internationalised (IDNA) label"; return false; }
        }
        else label = raw.ToLowerInvariant();

        if (label.Length > MaxLabelLength) { error = $"is longer than {MaxLabelLength} bytes"; return false; }
        foreach (var c in label)
            if (!(c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_'))
            {
                error = c == '*' ? "holds a wildcard (only a whole first label may be * or **)" : $"holds '{Printable(c)}'";
                return false;
            }
        if (label[0] == '-' || label[^1] == '-') { error = "starts or ends with a hyphen"; return false; }
        if (label.StartsWith("xn--", StringComparison.Ordinal))
        {
            try
            {
                // round trip: the A-label must be the canonical encoding of its U-label
                var unicode = Idn.GetUnicode(label);
                if (!string.Equals(Idn.GetAscii(unicode), label, StringComparison.Ordinal))
                {
                    error = "is not a canonical IDNA A-label";
                    return false;
                }
            }
            catch (ArgumentException) { error = "is not a valid IDNA A-label (bad punycode)"; return false; }
        }
        error = "";
        return true;
    }

    private static bool IsUnicodeLabelChar(char c)
    {
        if (c < 128) return c is >= 'a' and <= 'z' or >= '0' and <= '9' or '-';
        if (c is >= '\uFF00' and <= '\uFFEF') return false; // fullwidth and halfwidth forms
        return char.GetUnicodeCategory(c) is UnicodeCategory.LowercaseLetter or UnicodeCategory.OtherLetter
            or UnicodeCategory.ModifierLetter or UnicodeCategory.DecimalDigitNumber
            or UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark;
    }

    private static bool IsAscii(string s)
    {
        foreach (var c in s) if (c > 127) return false;
        return true;
    }

    private static string Printable(char c) =>
        c is >= ' ' and < (char)127 ? c.ToString() : $"\\u{(int)c:x4}";

    /// <summary>Bytes of the name on the wire: one length byte per label, the labels, the root.</summary>
    public int WireLength => Encoding.ASCII.GetByteCount(Value) + 2;
}

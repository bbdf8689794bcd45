using System.Globalization;
using System.Text;

namespace WhaleWall.Firewall;

/// <summary>Text from outside (labels, container names, DNS answers) made safe to show on one
/// line of a log, an error or a terminal: a newline in a label must not forge a log line, and
/// a bidi override must not make a line read differently from what it holds. Pure.</summary>
public static class SafeText
{
    /// <summary>The marker put where text was cut.</summary>
    public const string Cut = "…";

    /// <summary>Escapes what could forge or disguise a line: control characters (C0, DEL, C1),
    /// Unicode format characters (bidi overrides and isolates, zero-width characters, BOM,
    /// tags), line and paragraph separators, and unpaired surrogates. <c>\n</c>, <c>\r</c> and
    /// <c>\t</c> become those two characters, everything else <c>\u{XXXX}</c>. Backslashes are
    /// kept as they are, so escaping twice changes nothing (layers may each escape).</summary>
    public static string Escape(string? text) => Escape(text, int.MaxValue);

    /// <summary><see cref="Escape(string?)"/>, then at most <paramref name="max"/> characters
    /// (an escape is never cut in two), with <see cref="Cut"/> added when something was left out.</summary>
    public static string Escape(string? text, int max)
    {
        if (string.IsNullOrEmpty(text)) return "";
        if (text.Length <= max && IsClean(text)) return text;
        var result = new StringBuilder(Math.Min(text.Length, max) + 8);
        for (var i = 0; i < text.Length;)
        {
            string piece;
            int width;
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out width) != System.Buffers.OperationStatus.Done)
            {
                piece = Hex(text[i]); // unpaired surrogate
                width = 1;
            }
            else piece = NeedsEscape(rune) ? Escaped(rune) : text.Substring(i, width);
            if (result.Length + piece.Length > max)
            {
                result.Append(Cut);
                return result.ToString();
            }
            result.Append(piece);
            i += width;
        }
        return result.ToString();
    }

    private static bool IsClean(string text)
    {
        foreach (var ch in text)
            if (ch < 0x20 || ch >= 0x7f) return !AnyEscape(text);
        return true;
    }

    private static bool AnyEscape(string text)
    {
        for (var i = 0; i < text.Length;)
        {
            if (Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var width) != System.Buffers.OperationStatus.Done) return true;
            if (NeedsEscape(rune)) return true;
            i += width;
        }
        return false;
    }

    private static bool NeedsEscape(Rune rune) =>
        Rune.IsControl(rune) || Rune.GetUnicodeCategory(rune) is UnicodeCategory.Format
            or UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator;

    private static string Escaped(Rune rune) => rune.Value switch
    {
        '\n' => "\\n",
        '\r' => "\\r",
        '\t' => "\\t",
        _ => Hex(rune.Value),
    };

    private static string Hex(int value) => $"\\u{{{value:X4}}}";
}

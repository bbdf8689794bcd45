using WhaleWall.Firewall;
using Xunit;

namespace WhaleWall.Tests.Labels;

public class SafeTextTests
{
    [Theory]
    [InlineData("plain text", "plain text")]
    [InlineData("a\nb", "a\\nb")]
    [InlineData("a\r\nb\tc", "a\\r\\nb\\tc")]
    [InlineData("nul\0", "nul\\u{0000}")]
    [InlineData("esc\u001b[31m", "esc\\u{001B}[31m")]
    [InlineData("del\u007f", "del\\u{007F}")]
    [InlineData("c1\u0085", "c1\\u{0085}")]
    [InlineData("bidi\u202eevil", "bidi\\u{202E}evil")]
    [InlineData("isolate\u2066x\u2069", "isolate\\u{2066}x\\u{2069}")]
    [InlineData("zero\u200bwidth\u200d", "zero\\u{200B}width\\u{200D}")]
    [InlineData("bom\ufeff", "bom\\u{FEFF}")]
    [InlineData("line\u2028para\u2029", "line\\u{2028}para\\u{2029}")]
    [InlineData("tag\U000E0041", "tag\\u{E0041}")]
    [InlineData("café ünïcödé 名前 🐳", "café ünïcödé 名前 🐳")]
    [InlineData("back\\slash", "back\\slash")]
    public void Escapes_what_could_forge_or_disguise_a_line(string text, string expected) =>
        Assert.Equal(expected, SafeText.Escape(text));

    [Theory]
    [InlineData("a\nb\u202e")]
    [InlineData("already \\n escaped")]
    public void Escaping_twice_changes_nothing(string text) =>
        Assert.Equal(SafeText.Escape(text), SafeText.Escape(SafeText.Escape(text)));

    [Theory]
    [InlineData("abcdef", 4, "abcd…")]
    [InlineData("abcd", 4, "abcd")]
    [InlineData("ab\ncd", 3, "ab…")] // an escape is never cut in two
    [InlineData("ab\ncd", 4, "ab\\n…")]
    [InlineData("🐳🐳🐳", 3, "🐳…")] // nor a surrogate pair
    public void Cuts_at_a_length_with_a_marker(string text, int max, string expected) =>
        Assert.Equal(expected, SafeText.Escape(text, max));

    [Fact]
    public void An_unpaired_surrogate_is_escaped() => // (attributes cannot hold one: UTF-8 in metadata)
        Assert.Equal("lone\\u{D800}x", SafeText.Escape("lone" + (char)0xD800 + "x"));

    [Fact]
    public void Null_and_empty_are_empty()
    {
        Assert.Equal("", SafeText.Escape(null));
        Assert.Equal("", SafeText.Escape(""));
    }
}

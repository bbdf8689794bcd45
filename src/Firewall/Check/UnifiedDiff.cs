using System.Text;

namespace WhaleWall.Firewall.Check;

/// <summary>A line-based unified diff (<c>---</c>/<c>+++</c> header, <c>@@ -a,b +c,d @@</c>
/// hunks with <paramref name="context"/> lines of context, GNU diff's spelling: a count of 1 is
/// omitted, a missing final newline is marked <c>\ No newline at end of file</c>), for showing an
/// edit before it is written. Pure. Common leading and trailing lines are set aside first; the
/// rest is matched by a longest common subsequence while it fits
/// <see cref="MaxMatrixCells"/>, else shown as one replaced block (still a correct diff).</summary>
public static class UnifiedDiff
{
    /// <summary>Most cells of the LCS table (old lines x new lines left after trimming).</summary>
    public const long MaxMatrixCells = 4_000_000;

    private enum Op { Same, Del, Add }

    /// <summary>"" when the texts are equal.</summary>
    public static string Render(string oldText, string newText, string oldName, string newName, int context = 3)
    {
        if (oldText == newText) return "";
        var a = Lines(oldText);
        var b = Lines(newText);
        var script = Script(a, b);

        var sb = new StringBuilder();
        sb.Append("--- ").Append(oldName).Append('\n');
        sb.Append("+++ ").Append(newName).Append('\n');
        var changes = Enumerable.Range(0, script.Count).Where(i => script[i].Op != Op.Same).ToList();
        var g = 0;
        while (g < changes.Count)
        {
            var last = g;
            while (last + 1 < changes.Count && changes[last + 1] - changes[last] <= 2 * context) last++;
            var from = Math.Max(0, changes[g] - context);
            var to = Math.Min(script.Count, changes[last] + context + 1);
            // line numbers before `from`
            int oldBefore = 0, newBefore = 0;
            for (var i = 0; i < from; i++)
            {
                if (script[i].Op != Op.Add) oldBefore++;
                if (script[i].Op != Op.Del) newBefore++;
            }
            int oldCount = 0, newCount = 0;
            for (var i = from; i < to; i++)
            {
                if (script[i].Op != Op.Add) oldCount++;
                if (script[i].Op != Op.Del) newCount++;
            }
            sb.Append("@@ -").Append(Range(oldBefore, oldCount)).Append(" +").Append(Range(newBefore, newCount)).Append(" @@\n");
            for (var i = from; i < to; i++)
            {
                var (op, line) = script[i];
                sb.Append(op switch { Op.Same => ' ', Op.Del => '-', _ => '+' });
                if (line.EndsWith('\n')) sb.Append(line);
                else sb.Append(line).Append("\n\\ No newline at end of file\n");
            }
            g = last + 1;
        }
        return sb.ToString();
    }

    private static string Range(int before, int count) => count switch
    {
        0 => $"{before},0",
        1 => $"{before + 1}",
        _ => $"{before + 1},{count}",
    };

    /// <summary>Lines with their line break ("\n", "\r\n"), so a last line without one differs
    /// from the same text with one.</summary>
    private static List<string> Lines(string text)
    {
        var lines = new List<string>();
        var at = 0;
        while (at < text.Length)
        {
            var nl = text.IndexOf('\n', at);
            var end = nl < 0 ? text.Length : nl + 1;
            lines.Add(text[at..end]);
            at = end;
        }
        return lines;
    }

    private static List<(Op Op, string Line)> Script(List<string> a, List<string> b)
    {
        var prefix = 0;
        while (prefix < a.Count && prefix < b.Count && a[prefix] == b[prefix]) prefix++;
        var suffix = 0;
        while (suffix < a.Count - prefix && suffix < b.Count - prefix && a[a.Count - 1 - suffix] == b[b.Count - 1 - suffix]) suffix++;
        var script = new List<(Op, string)>(a.Count + b.Count);
        for (var i = 0; i < prefix; i++) script.Add((Op.Same, a[i]));

        int n = a.Count - prefix - suffix, m = b.Count - prefix - suffix;
        if ((long)n * m <= MaxMatrixCells && n > 0 && m > 0)
        {
            // lcs[i, j]: LCS length of a[prefix+i..] and b[prefix+j..]
            var lcs = new int[n + 1, m + 1];
            for (var i = n - 1; i >= 0; i--)
                for (var j = m - 1; j >= 0; j--)
                    lcs[i, j] = a[prefix + i] == b[prefix + j] ? lcs[i + 1, j + 1] + 1 : Math.Max(lcs[i + 1, j], lcs[i, j + 1]);
            int x = 0, y = 0;
            while (x < n && y < m)
            {
                if (a[prefix + x] == b[prefix + y]) { script.Add((Op.Same, a[prefix + x])); x++; y++; }
                else if (lcs[x + 1, y] >= lcs[x, y + 1]) { script.Add((Op.Del, a[prefix + x])); x++; }
                else { script.Add((Op.Add, b[prefix + y])); y++; }
            }
            for (; x < n; x++) script.Add((Op.Del, a[prefix + x]));
            for (; y < m; y++) script.Add((Op.Add, b[prefix + y]));
        }
        else
        {
            for (var i = 0; i < n; i++) script.Add((Op.Del, a[prefix + i]));
            for (var j = 0; j < m; j++) script.Add((Op.Add, b[prefix + j]));
        }
        for (var i = a.Count - suffix; i < a.Count; i++) script.Add((Op.Same, a[i]));
        return script;
    }
}

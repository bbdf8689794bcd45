using System.Diagnostics;

namespace WhaleWall.TestSupport;

/// <summary>Runs a program (no shell, arguments passed as-is) and collects its output.</summary>
public static class Shell
{
    /// <summary>Runs and returns stdout; throws with stderr when the exit code is not 0.</summary>
    public static string Run(string file, params string[] args)
    {
        var (code, output, error) = Try(file, args);
        if (code != 0)
            throw new InvalidOperationException(
                $"`{file} {string.Join(' ', args)}` exited {code}: {error.Trim()}{(output.Length > 0 ? " | stdout: " + output.Trim() : "")}");
        return output;
    }

    public static (int Code, string Out, string Err) Try(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        p.WaitForExit();
        var result = (p.ExitCode, stdout.GetAwaiter().GetResult(), stderr.GetAwaiter().GetResult());
        // Close our pipe ends now rather than at the next GC: libnftables (1.0.x) select()s
        // on its netlink socket and aborts the process if that fd number reaches 1024.
        p.StandardOutput.Dispose();
        p.StandardError.Dispose();
        return result;
    }
}

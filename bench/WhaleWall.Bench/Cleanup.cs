using System.Runtime.InteropServices;

namespace WhaleWall.Bench;

/// <summary>What the bench made (its table, namespaces, processes, the harness), undone in
/// reverse order exactly once: at the end, on an exception, on Ctrl-C or SIGTERM.</summary>
public static class Cleanup
{
    private static readonly Stack<(string What, Action Undo)> undo = new();
    private static readonly object gate = new();
    private static PosixSignalRegistration? term, intr;

    public static void Register(string what, Action action)
    {
        lock (gate) undo.Push((what, action));
    }

    public static void InstallHandlers()
    {
        void OnSignal(PosixSignalContext ctx)
        {
            ctx.Cancel = true;
            Console.Error.WriteLine($"wwbench: {ctx.Signal}: cleaning up");
            RunAll();
            Environment.Exit(ctx.Signal == PosixSignal.SIGINT ? 130 : 143);
        }
        term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
        intr = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => RunAll();
    }

    public static void RunAll()
    {
        while (true)
        {
            (string What, Action Undo) item;
            lock (gate)
            {
                if (undo.Count == 0) return;
                item = undo.Pop();
            }
            try { item.Undo(); }
            catch (Exception e) { Console.Error.WriteLine($"wwbench: cleanup of {item.What} failed: {e.Message}"); }
        }
    }
}

"""One log-log panel of a crossover plot: a line per model against a size axis, and above 1 where the
contender beats the baseline, the baseline's value over the contender's at each size."""


def crossover_panel(ax, sizes, series, baseline, contender, labels, xlabel, ylabel, title, ratios=True):
    """series: model -> (values per size, matplotlib style); labels: the x tick labels."""
    import matplotlib.ticker

    for model, (values, style) in series.items():
        ax.plot(sizes, values, style, label=model)
    if ratios:
        for size, base, cont in zip(sizes, series[baseline][0], series[contender][0]):
            ax.annotate(f"{base / cont:.2f}x", (size, cont), textcoords="offset points", xytext=(0, -14),
                        ha="center", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(sizes)
    ax.set_xticklabels(labels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()

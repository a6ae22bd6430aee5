#compdef terwayctl

_terwayctl_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _TERWAYCTL_COMPLETE=complete_zsh terwayctl)
}

compdef _terwayctl_completion terwayctl

# ~/.bashrc: executed by bash(1) for non-login shells.
export LS_OPTIONS='--color=auto'

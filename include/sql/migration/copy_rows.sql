COPY {target} ({columns}) FROM STDIN {options}
